# Warren as one static binary on distroless, running as a non-root user.
#
#   docker build -t warren --build-arg VERSION=$(git describe --tags --always) .
#   docker run -p 5672:5672 -p 15672:15672 -v warren-data:/var/lib/warren warren
#
# Settings: WARREN_* environment variables, flags after the image name, or a config file given
# with WARREN_CONFIG_FILE (see the README's configuration reference).
# cmd/warren/docker_test.go checks this file against the binary's real flags and defaults.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/warrenmq/warren/server.Version=${VERSION}" -o /out/warren ./cmd/warren \
    && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/warren /warren
# The data directory belongs to the nonroot user (65532), so a fresh named volume does too.
COPY --from=build --chown=65532:65532 /out/data /var/lib/warren
ENV WARREN_DATA_DIR=/var/lib/warren
# As RabbitMQ's image: guest may log in from outside the container (published ports arrive from
# the bridge, not from localhost). Set a real user and password with WARREN_DEFAULT_USER/PASS.
ENV WARREN_LOOPBACK_USERS=none
USER 65532:65532
EXPOSE 5672 15672
VOLUME /var/lib/warren
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/warren", "healthcheck"]
ENTRYPOINT ["/warren"]
