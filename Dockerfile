# One image for web, workers and beat (docker-compose.yml picks the command).
FROM python:3.11-slim
WORKDIR /app
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/base.txt
COPY . .
ENV PYTHONPATH=/app/platform:/app HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
