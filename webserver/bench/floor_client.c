// The floor of a kernel-TCP HTTP client: the least a client can do per request on
// one core with epoll, used by `make bench-web` to show how much of a load
// generator's CPU time per request is its own and how much any client pays the
// kernel.
//
// Keep-alive connections to 127.0.0.1, one request in flight on each. Per response it
// makes one recv and one send (edge-triggered epoll, one epoll_wait per batch). It
// parses nothing: it learns the response's length from the first response and then
// counts bytes, so it only fits a target that answers every request with the same
// number of bytes (a static file). No timeouts, no latency record.
//
// Usage: floor_client PORT PATH CONNECTIONS SECONDS
// Prints: "<responses> responses in <seconds>s"; exits 1 on any error.

#define _GNU_SOURCE  // strcasestr
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "floor_client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int connect_to(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct timeval limit = {.tv_sec = 5};  // for the blocking first response
    if (fd < 0) die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect");
    return fd;
}

static void send_all(int fd, const char *req, size_t len) {
    if (send(fd, req, len, 0) != (ssize_t)len) die("send");
}

// The whole length of the first response: its head and Content-Length bytes of body.
static long response_length(int fd, const char *req, size_t len) {
    static char buf[1 << 16];
    long have = 0;
    send_all(fd, req, len);
    for (;;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (n <= 0) die("reading the first response");
        have += n;
        buf[have] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (end && cl && cl < end) {
            long total = (end + 4 - buf) + atol(cl + 17);
            if (have >= total) return total;
        }
        if (have == (long)sizeof buf - 1) {
            errno = EMSGSIZE;
            die("the first response");
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: floor_client PORT PATH CONNECTIONS SECONDS\n");
        return 2;
    }
    int port = atoi(argv[1]), conns = atoi(argv[3]);
    double secs = atof(argv[4]);
    char req[1024];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    if (conns < 1 || len >= (int)sizeof req) {
        fprintf(stderr, "floor_client: bad arguments\n");
        return 2;
    }
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    long resp = 0, done = 0;
    long *pending = calloc(conns + 1024, sizeof *pending);  // by fd: bytes still due
    for (int i = 0; i < conns; i++) {
        int fd = connect_to(port);
        if (fd >= conns + 1024) die("descriptor numbers");
        if (i == 0) resp = response_length(fd, req, len);
        struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) die("epoll_ctl");
        pending[fd] = resp;
        send_all(fd, req, len);
    }
    static char buf[1 << 16];
    struct epoll_event ev[256];
    double start = now(), t = start;
    while (t - start < secs) {
        int n = epoll_wait(ep, ev, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            for (;;) {
                ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0) die("recv");
                for (pending[fd] -= r; pending[fd] <= 0; pending[fd] += resp) {
                    done++;
                    send_all(fd, req, len);
                }
                if (r < (ssize_t)sizeof buf) break;  // the socket is drained
            }
        }
        t = now();
    }
    printf("%ld responses in %.3fs\n", done, t - start);
    return 0;
}
