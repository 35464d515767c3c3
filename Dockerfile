# The platform's image: Node 24 runs the TypeScript sources directly (type stripping), no build step.
# Used by docker-compose.yml; `docker build -t smart-parking .` works on its own too.
FROM node:24-slim

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/.data
WORKDIR /app

# Production dependencies only. --ignore-scripts: the `node` npm package pins a Node binary for npm
# scripts through an install script; in the image the image's own Node 24 runs the app.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# Only what runs; with MONGODB_URI, REDIS_URL and MQTT_URL set nothing embedded is started.
COPY src/ ./src/
COPY workers/ ./workers/

# The code stays root-owned and read-only for the app; only DATA_DIR is writable.
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node

EXPOSE 3000
# main.ts shuts down gracefully on SIGTERM (doors, then connections) within SHUTDOWN_TIMEOUT_MS.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/ready').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
CMD ["node", "src/main.ts"]
