# perp-keeper: build the TypeScript once, run the compiled keeper as an unprivileged user.
#   docker build -t perp-keeper .
#   docker run --env-file keeper.env -v perp-keeper-data:/data -v $PWD/config/mainnet.json:/app/config/keeper.json:ro \
#     -p 127.0.0.1:9464:9464 perp-keeper
# The keeper's metrics listen on keeper.metricsHost: set it to "0.0.0.0" in the mounted config to publish them.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY abi ./abi
COPY src ./src
# the image runs JavaScript only: the dependencies' TypeScript (viem ships ~20 MB of sources and declarations) stays
# in this stage, and so does ours (src/ is never copied below)
RUN npm run build && npm prune --omit=dev \
 && find node_modules -type f \( -name "*.ts" -o -name "*.mts" -o -name "*.cts" -o -name "*.ts.map" \) -delete

FROM node:20-bookworm-slim
# the commit built (docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD)): perp_keeper_build_info
ARG GIT_COMMIT=unknown
ENV NODE_ENV=production \
    GIT_COMMIT=$GIT_COMMIT \
    KEEPER_STATE_DIR=/data \
    LOG_FORMAT=json
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
# the image's `node` user, by number: Kubernetes' runAsNonRoot can verify a numeric user, not a name
RUN mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
# journals (pending transactions: never lose them) and snapshots
VOLUME ["/data"]
EXPOSE 9464
# healthy: a new head processed lately, and no transaction wedged (GET /healthz)
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM (docker stop) stops it cleanly; docker stop's default 10 s grace equals keeper.shutdownGraceMs: give more
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["run", "--config", "config/keeper.json"]
