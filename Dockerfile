# Multi-stage build: compile TypeScript with the dev dependencies, then a slim runtime with production
# dependencies, espeak-ng and pocketsphinx (the offline TTS/STT), running as an unprivileged user.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      espeak-ng pocketsphinx pocketsphinx-en-us tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Production names its services explicitly, so the image never runs standalone (SQLite, no broker) by accident;
# override the addresses with the deployment's environment.
# No echo bot as a production default: a create without llm_type is refused (400) instead of answered by
# local.echo. UNKNOWN_CALLS=reject goes with it (an unknown Audiosocket call would have no LLM).
ENV NODE_ENV=production \
    DATABASE_DSN=mysql://pipecat@mysql:3306/pipecat \
    REDIS_ADDRESS=redis:6379 \
    RABBITMQ_ADDRESS=amqp://guest:guest@rabbitmq:5672 \
    DEFAULT_LLM_TYPE= \
    UNKNOWN_CALLS=reject \
    AUDIOSOCKET_DTMF=ignore \
    CALL_MANAGER=on \
    HTTP_LISTEN_ADDRESS=0.0.0.0:8001 \
    PROMETHEUS_LISTEN_ADDRESS=:2112 \
    AUDIOSOCKET_LISTEN_ADDRESS=0.0.0.0:8080
# HTTP on 0.0.0.0 refuses to start without HTTP_AUTH_TOKEN (pass it as a secret). Open files: the daemon sizes its
# connection caps from `nofile`; give it 128 + 10 per concurrent call + HTTP connections, e.g.
# `docker run --ulimit nofile=16384:16384` (or the pod's runtime default, usually 1048576) for ~1,400 calls.
# The pacing thread that writes Audiosocket frames asks for nice -15 (AUDIOSOCKET_PACER_NICE); as user node that
# needs `--ulimit nice=35` (RLIMIT_NICE), otherwise it keeps the normal priority and logs a warning.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
COPY --from=build /app/src/console/public ./src/console/public
COPY bin ./bin
USER node
EXPOSE 8080 8001 2112
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/cmd/pipecat-manager.js"]
