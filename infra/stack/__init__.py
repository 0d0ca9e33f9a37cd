"""The local PicNix service stack (Kafka, MinIO, PostgreSQL, Prometheus) as plain processes.

Use :mod:`infra.stack.manager` (``stack_up``, ``stack_down``, ``stack_status``, ``stack_reset``).
"""
