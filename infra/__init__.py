"""Infrastructure: the embedded Kafka-compatible broker and deployment material."""
