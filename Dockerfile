# Two stages: the build stage installs the exact dependencies of requirements.lock (hashes
# checked) and the project as a wheel into a virtualenv; the runtime stage copies only that
# virtualenv and runs as an unprivileged user.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY dialogs ./dialogs
COPY storage ./storage
COPY domain ./domain
COPY services ./services
COPY chat ./chat
COPY data ./data
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl

FROM python:3.11-slim
# A CJK font for the PDF form; fonts-wqy-microhei is small and complete for Simplified Chinese.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    FILES_DIR=/app/var/files \
    LOG_FORMAT=json
RUN useradd --create-home --uid 1000 bot && mkdir -p /app/var/files && chown -R bot /app/var
WORKDIR /app
USER bot
CMD ["bangdaiban", "run"]
