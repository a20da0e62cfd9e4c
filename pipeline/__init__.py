"""poa-filter: suppresses firmware-activation AD1 alerts (SEC MP102B) on Kafka."""

__version__ = "0.1.0"
