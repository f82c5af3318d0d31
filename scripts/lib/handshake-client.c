/*
 * bench:gateway's new-connection load generator (issue 22 item 2): N mTLS connections to a
 * gateway, each a TLS 1.3 handshake plus one HTTP/1.1 request (Connection: close) read to the
 * end, from T threads. With --resume, every connection after a thread's first offers the newest
 * session ticket that thread received (psk_dhe_ke, as any OpenSSL client: an ECDHE still runs,
 * which keeps forward secrecy), and the connections that resumed are counted. The Node load
 * generator spent more CPU per handshake than the gateway did, so on a 2-core machine it, not
 * the gateway, set the connection rate; this client costs a fraction of that. A thread offers its
 * newest ticket again when a resumed connection brought no new one (haproxy 2.6 sends none).
 *
 * Prints one JSON line: connections, ok (HTTP 200 read to the end), errors, resumed, seconds,
 * perSecond and the client's own CPU seconds (getrusage). Exit 0 once every connection was
 * tried, 2 on bad arguments or unreadable key material. Built by scripts/lib/handshake-client.ts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct options {
    const char *host, *ca, *cert, *key, *path;
    int port, connections, threads, resume;
};

struct worker {
    pthread_t thread;
    const struct options *opt;
    SSL_CTX *ctx;
    char request[512];
    int connections, ok, errors, resumed;
    SSL_SESSION *session;
};

/* The newest ticket of this connection (TLS 1.3 sends them after the handshake). */
static int keep_session(SSL *ssl, SSL_SESSION *session) {
    struct worker *w = SSL_get_app_data(ssl);
    if (w->session) SSL_SESSION_free(w->session);
    w->session = session;
    return 1; /* this callback keeps the reference */
}

static int tcp_connect(const struct options *opt) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)opt->port)};
    if (inet_pton(AF_INET, opt->host, &addr.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One connection: handshake, request, the whole answer; 1 when it was an HTTP 200. */
static int one_connection(struct worker *w) {
    int fd = tcp_connect(w->opt);
    if (fd < 0) return 0;
    SSL *ssl = SSL_new(w->ctx);
    int good = 0;
    if (!ssl) goto out;
    SSL_set_app_data(ssl, w);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (w->opt->resume && w->session) {
        /*
         * A copy: OpenSSL will not offer a session object a second time once it has resumed
         * with it, and haproxy 2.6 sends no new ticket on a resumed connection, so offering the
         * object itself would resume only every other connection there. The ticket inside is
         * the same; a stateless ticket may be presented again until it expires.
         */
        SSL_SESSION *offer = SSL_SESSION_dup(w->session);
        if (!offer) goto out;
        SSL_set_session(ssl, offer);
        SSL_SESSION_free(offer);
    }
    if (SSL_connect(ssl) != 1) goto out;
    if (SSL_session_reused(ssl)) w->resumed++;
    size_t len = strlen(w->request);
    if (SSL_write(ssl, w->request, (int)len) != (int)len) goto out;
    /* The answer: up to the end of its Content-Length body, else until the server closes. */
    char buf[16384];
    size_t got = 0, want = (size_t)-1;
    for (;;) {
        int n = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got));
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (end && want == (size_t)-1) {
            char *length = strcasestr(buf, "\r\ncontent-length:");
            if (length && length < end) want = (size_t)(end + 4 - buf) + strtoul(length + 17, NULL, 10);
        }
        if (got >= want || got == sizeof buf - 1) break;
    }
    good = got >= 13 && strncmp(buf, "HTTP/1.1 200 ", 13) == 0;
    /* Our close_notify: OpenSSL marks the session of a connection freed without one not resumable. */
    SSL_shutdown(ssl);
out:
    if (ssl) SSL_free(ssl);
    close(fd);
    return good;
}

static void *run(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < w->connections; i++) {
        if (one_connection(w)) w->ok++;
        else w->errors++;
    }
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int usage(void) {
    fprintf(stderr, "usage: handshake-client --host <ipv4> --port <n> --ca <pem> --cert <pem> --key <pem> --connections <n> [--threads <n>] [--resume] [--path /api/version]\n");
    return 2;
}

int main(int argc, char **argv) {
    /* A bench killed outright must not leave this running (it is a single process). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 2;
    struct options opt = {.threads = 1, .path = "/api/version"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--resume")) { opt.resume = 1; continue; }
        if (!v) return usage();
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--ca")) opt.ca = v;
        else if (!strcmp(a, "--cert")) opt.cert = v;
        else if (!strcmp(a, "--key")) opt.key = v;
        else if (!strcmp(a, "--path")) opt.path = v;
        else if (!strcmp(a, "--connections")) opt.connections = atoi(v);
        else if (!strcmp(a, "--threads")) opt.threads = atoi(v);
        else return usage();
        i++;
    }
    if (!opt.host || !opt.ca || !opt.cert || !opt.key || opt.port <= 0 || opt.port > 65535 || opt.connections <= 0 || opt.threads <= 0 || opt.threads > 256 || strlen(opt.path) > 256) return usage();

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    /* A server that closes without close_notify after the answer (Connection: close) ends it cleanly. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, keep_session);
    if (SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1 || SSL_CTX_use_certificate_chain_file(ctx, opt.cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, opt.key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "handshake-client: cannot load the CA, certificate or key: ");
        ERR_print_errors_fp(stderr);
        return 2;
    }

    struct worker *workers = calloc((size_t)opt.threads, sizeof *workers);
    if (!workers) return 2;
    double started = now();
    for (int t = 0; t < opt.threads; t++) {
        struct worker *w = &workers[t];
        w->opt = &opt;
        w->ctx = ctx;
        w->connections = opt.connections / opt.threads + (t < opt.connections % opt.threads);
        snprintf(w->request, sizeof w->request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: zto-bench\r\nConnection: close\r\n\r\n", opt.path, opt.host, opt.port);
        if (pthread_create(&w->thread, NULL, run, w) != 0) return 2;
    }
    int ok = 0, errors = 0, resumed = 0;
    for (int t = 0; t < opt.threads; t++) {
        pthread_join(workers[t].thread, NULL);
        ok += workers[t].ok;
        errors += workers[t].errors;
        resumed += workers[t].resumed;
    }
    double seconds = now() - started;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("{\"connections\":%d,\"ok\":%d,\"errors\":%d,\"resumed\":%d,\"seconds\":%.4f,\"perSecond\":%.1f,\"clientCpuSeconds\":%.4f}\n", opt.connections, ok, errors, resumed, seconds, ok / seconds, cpu);
    return 0;
}
