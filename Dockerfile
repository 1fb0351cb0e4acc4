# ctprobe in a container: Node.js >= 20 and the tools ctprobe drives (iproute2, iptables,
# nftables, conntrack, tcpdump, procps).
#
#   docker build -t ctprobe .
#   docker run --rm --network host --cap-add NET_ADMIN --cap-add NET_RAW ctprobe audit   # this host
#   docker run --rm --privileged ctprobe lab                                               # the lab makes namespaces
#
# BASE is any Debian whose archive has nodejs >= 20 (trixie). Only packages the base lacks are
# installed, so a base that already has them builds with no apt mirror reachable (CI builds from
# a trixie rootfs made with mmdebstrap and `docker import`, see .ci/image.sh). NPM_FLAGS lets CI
# install from an npm cache put in the build context (.npm-cache) with `--offline`.
ARG BASE=debian:trixie-slim

FROM ${BASE} AS build
ARG NPM_FLAGS=""
RUN set -eu; need=""; for p in nodejs npm; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done; \
    if [ -n "$need" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need && rm -rf /var/lib/apt/lists/*; fi
WORKDIR /src
COPY . .
# npm ci also runs `prepare`, which compiles src/ into dist/; then drop the dev dependencies.
RUN npm ci --no-audit --no-fund --loglevel=error $NPM_FLAGS && npm prune --omit=dev --no-audit --no-fund --loglevel=error $NPM_FLAGS

FROM ${BASE}
RUN set -eu; need=""; for p in nodejs iproute2 iptables nftables conntrack tcpdump procps; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done; \
    if [ -n "$need" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need && rm -rf /var/lib/apt/lists/*; fi; \
    node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("ctprobe needs Node.js >= 20, the base has " + process.version); process.exit(1) }'
COPY --from=build /src/package.json /src/LICENSE /src/README.md /opt/ctprobe/
COPY --from=build /src/node_modules /opt/ctprobe/node_modules
COPY --from=build /src/dist /opt/ctprobe/dist
RUN rm -rf /opt/ctprobe/dist/bench && find /opt/ctprobe/dist -name '*.test.js' -delete \
    && chmod +x /opt/ctprobe/dist/cli/main.js && ln -s /opt/ctprobe/dist/cli/main.js /usr/local/bin/ctprobe && ctprobe --version
ENTRYPOINT ["ctprobe"]
CMD ["--help"]
