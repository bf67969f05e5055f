# resnet-hub container image. Not built on the machine this was written on (it has no Docker
# engine): the file is checked by test/integration/deploy.test.ts against the hub's flags, not by a build.
#
#   docker build -t resnet-hub:0.1.0 .
#   docker run --rm -p 5576:5576 -p 8080:8080 -v resnet-models:/models resnet-hub:0.1.0
#
# Configuration: the HUB_* variables (README, "Command line"); the model store lives on the
# /models volume, so weights survive the container and are fetched or generated only once.

# --- build: every dependency, the web app, then only what runs -------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY . .
# The web app is built here, with the hub's own build step (it writes the stamp the hub checks),
# so a hub never needs Vite at run time.
RUN node --import tsx --input-type=module \
      -e "import { ensureWebBuild } from './server/web-build.ts'; await ensureWebBuild({ info: (o, m) => console.log(m, JSON.stringify(o)) })"
# The hub runs its TypeScript through tsx, a devDependency: prune the rest, then put tsx back at
# the version the lockfile pins. The lockfile itself is restored, as the web build stamp hashes it.
RUN TSX_VERSION="$(node -p "require('./package-lock.json').packages['node_modules/tsx'].version")" \
 && cp package-lock.json /tmp/package-lock.json \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm install --no-save --omit=dev --no-audit --no-fund "tsx@${TSX_VERSION}" \
 && cp /tmp/package-lock.json package-lock.json \
 && rm -rf models/test-* models/cache bench-results test-artifacts

# --- run: no build tools, not root ----------------------------------------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HUB_ZMQ=tcp://*:5576 \
    HUB_HTTP_PORT=8080 \
    HUB_HTTP_HOST=0.0.0.0 \
    HUB_MODEL_DIR=/models/resnet50
WORKDIR /app
# The system's libjpeg-turbo (with SIMD) decodes small JPEGs 2.5× faster than its WebAssembly
# build, which the hub falls back to without it (README, "Decoding").
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends libturbojpeg0 \
 && rm -rf /var/lib/apt/lists/*
# Owned by root and read-only to the hub: only /models (and /tmp) are written at run time.
COPY --from=build /app /app
RUN mkdir -p /models && chown node:node /models
VOLUME ["/models"]
USER node
EXPOSE 5576 8080 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HUB_HTTP_PORT || 8080) + '/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node, not npm, as PID 1's child-free process: SIGTERM reaches the hub itself, which drains.
ENTRYPOINT ["node", "--import", "tsx", "server/main.ts"]
