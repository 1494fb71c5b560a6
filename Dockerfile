# GT-Vision application image (web, supervisor, worker). FFmpeg comes from the imageio-ffmpeg
# wheel and psycopg ships libpq: no system package is needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GTV_DATA_DIR=/app/var

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Data directory (generated secrets, static files, recordings): a volume in docker-compose.
RUN useradd --create-home --uid 1000 app \
    && mkdir -p /app/var \
    && chown app:app /app/var
USER app

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "gtvision.asgi:application"]
