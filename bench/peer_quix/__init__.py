"""The benchmark's peer: the same stock-reservation core run by Quix Streams (see README.md).

Runs under its own virtual environment (``.venv-quix``, made by ``setup_venv.sh``): Quix
Streams pins older confluent-kafka and pydantic than the main pipeline does.
"""
