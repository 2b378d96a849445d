# triage-lead: the GitHub App's webhook server and in-process job runner (SQLite on the /data volume).
#
#   docker build -t triage-lead .
#   docker run -p 3000:3000 -v triage-lead-data:/data -e GITHUB_APP_ID=... -e GITHUB_WEBHOOK_SECRET=... \
#              -e GITHUB_PRIVATE_KEY="$(cat app.private-key.pem)" triage-lead
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/triage-lead.sqlite3

# A dedicated user without a shell or a writable home; only /data is its to write.
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin triage-lead \
 && mkdir /data && chown triage-lead:triage-lead /data

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
# The install is editable because the bot reads workflows/ beside its package (bot/core/workflow.py).
COPY pyproject.toml README.md ./
RUN mkdir bot && touch bot/__init__.py \
 && pip install -e . \
 && rm -rf bot

COPY bot ./bot
COPY workflows ./workflows
COPY fixtures ./fixtures
COPY app.yml Procfile ./
RUN python -m bot validate >/dev/null

USER triage-lead
VOLUME ["/data"]
EXPOSE 3000

# python, not curl: the slim image has no curl. /healthz answers 503 when the store cannot be read.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]

CMD ["python", "-m", "bot", "serve"]
