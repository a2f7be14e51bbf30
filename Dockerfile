# lain-registry: build with the dev toolchain, run on a slim Node LTS as a non-root user.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY launcher ./launcher
COPY scripts ./scripts
COPY src ./src
COPY config ./config
COPY ui ./ui
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/lain-registry
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/launcher ./launcher
COPY --from=build /src/config ./config
COPY --from=build /src/ui ./ui
# The same defaults as distribution's image: the store under /var/lib/registry, port 5000.
RUN mkdir -p /etc/lain-registry /var/lib/registry \
 && sed -e 's|rootdirectory: ./data|rootdirectory: /var/lib/registry|' -e 's|addr: 127.0.0.1:5000|addr: :5000|' \
      config/config.yml > /etc/lain-registry/config.yml \
 && chown -R node:node /var/lib/registry
USER node
VOLUME ["/var/lib/registry"]
EXPOSE 5000
# GET /health wherever the configuration (REGISTRY_* overrides included) listens; 503 while draining.
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
  CMD ["node", "/opt/lain-registry/dist/cli/main.js", "healthcheck", "/etc/lain-registry/config.yml"]
# The flags of the bin's first line (src/cli/main.ts).
ENTRYPOINT ["node", "--max-semi-space-size=8", "--min-semi-space-size=8", "/opt/lain-registry/dist/cli/main.js"]
CMD ["serve", "/etc/lain-registry/config.yml"]
