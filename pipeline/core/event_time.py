"""Event-time units and the range of valid timestamps (contract 3 and 6), in epoch milliseconds UTC."""

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: anything earlier is bad input
CANCELLATION_FROM_MS = 32_503_680_000_000  # 3000-01-01T00:00:00Z: an execution time from here on cancels
LATEST_MS = CANCELLATION_FROM_MS  # other timestamps must be before it
