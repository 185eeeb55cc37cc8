/* bench-mtls's open-loop client in C: the same schedule as bench/mtls/loadgen.py's Python
 * engine (one thread per keep-alive connection; request n = c + i*C is intended at n/rate s
 * after the start), without an interpreter between the clock and the socket.
 *
 *   loadgen IPV4 PORT PATH RATE CONNECTIONS SECONDS
 *
 * Prints one line per request: "S <intended_ns> <sent_ns> <done_ns>" (offsets from the
 * start) or "E <intended_ns> <reason>"; bench/mtls/loadgen.py parses and summarizes them.
 * Built by the benchmark with `cc -O2 -pthread`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

struct sample { int64_t intended, sent, done; const char *err; };

struct worker {
    int index;
    int64_t count;
    struct sample *samples;
    pthread_t thread;
};

static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static double rate;
static int connections;
static struct timespec start;

static int64_t ns_since_start(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - start.tv_sec) * 1000000000LL + (now.tv_nsec - start.tv_nsec);
}

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { close(fd); return -1; }
    return fd;
}

/* One response: the head, then Content-Length bytes of body. Returns NULL or the reason. */
static const char *read_response(int fd, char *buf) {
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have >= BUF - 1) return "response head too large";
        ssize_t n = recv(fd, buf + have, BUF - 1 - have, 0);
        if (n <= 0) return n == 0 ? "closed before the head" : "recv failed";
        have += (size_t)n;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 && strncmp(buf, "HTTP/1.0 200", 12) != 0)
        return "not a 200 response";
    long length = -1;
    for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0) length = atol(line + 17);
    }
    if (length < 0) return "no Content-Length";
    long body = (long)(have - (size_t)(end + 4 - buf));
    while (body < length) {
        ssize_t n = recv(fd, buf, BUF, 0);
        if (n <= 0) return n == 0 ? "closed inside the body" : "recv failed in the body";
        body += n;
    }
    return NULL;
}

static void *run(void *arg) {
    struct worker *w = arg;
    char *buf = malloc(BUF);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    int fd = dial();
    for (int64_t i = 0; i < w->count; i++) {
        struct sample *s = &w->samples[i];
        s->intended = (int64_t)((w->index + i * connections) / rate * 1e9);
        struct timespec at = {.tv_sec = start.tv_sec + s->intended / 1000000000LL,
                              .tv_nsec = start.tv_nsec + s->intended % 1000000000LL};
        if (at.tv_nsec >= 1000000000L) { at.tv_sec++; at.tv_nsec -= 1000000000L; }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR) {}
        s->sent = ns_since_start();
        if (fd < 0 && (fd = dial()) < 0) { s->err = "connect failed"; continue; }
        const char *err = NULL;
        if (send(fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len)
            err = "send failed";
        else
            err = read_response(fd, buf);
        s->done = ns_since_start();
        if (err) { s->err = err; close(fd); fd = -1; }
    }
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s IPV4 PORT PATH RATE CONNECTIONS SECONDS\n", argv[0]);
        return 2;
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    rate = atof(argv[4]);
    connections = atoi(argv[5]);
    double seconds = atof(argv[6]);
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || rate <= 0 || connections < 1 ||
        seconds <= 0 || strlen(argv[3]) > 300) {
        fprintf(stderr, "loadgen: bad arguments\n");
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: bench-mtls\r\n"
                                   "Accept: */*\r\n\r\n", argv[3], argv[1], argv[2]);
    struct worker *workers = calloc((size_t)connections, sizeof *workers);
    clock_gettime(CLOCK_MONOTONIC, &start);
    start.tv_nsec += 100000000L;  /* 100 ms for the threads to start and dial */
    if (start.tv_nsec >= 1000000000L) { start.tv_sec++; start.tv_nsec -= 1000000000L; }
    for (int c = 0; c < connections; c++) {
        double first = c / rate, interval = connections / rate;
        int64_t count = first >= seconds ? 0 : (int64_t)((seconds - first) / interval - 1e-9) + 1;
        workers[c] = (struct worker){.index = c, .count = count,
                                     .samples = calloc((size_t)count + 1, sizeof(struct sample))};
        pthread_create(&workers[c].thread, NULL, run, &workers[c]);
    }
    for (int c = 0; c < connections; c++) pthread_join(workers[c].thread, NULL);
    for (int c = 0; c < connections; c++) {
        for (int64_t i = 0; i < workers[c].count; i++) {
            struct sample *s = &workers[c].samples[i];
            if (s->err)
                printf("E %lld %s\n", (long long)s->intended, s->err);
            else
                printf("S %lld %lld %lld\n", (long long)s->intended, (long long)s->sent,
                       (long long)s->done);
        }
    }
    return 0;
}
