FROM python:3.11-slim

# A CJK font for the PDF form; fonts-wqy-microhei is small and complete for Simplified Chinese.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY dialogs ./dialogs
COPY storage ./storage
COPY data ./data
RUN pip install --no-cache-dir -e .

ENV FILES_DIR=/app/var/files
RUN useradd --create-home --uid 1000 bot && mkdir -p /app/var && chown -R bot /app/var
USER bot
CMD ["bangdaiban", "run"]
