// The floor of a kernel-TCP HTTP server: the least a server can do per request with
// epoll, used by `make bench-web` beside the fixed-rate latency comparison. Whatever
// latency it shows at a rate is the machine's own (waking an idle CPU, loopback's
// softirq work, the client), which no server goes below.
//
// THREADS threads, each with its own SO_REUSEPORT listener on 127.0.0.1:PORT and its
// own epoll instance (thread i pinned to the i-th CPU it may use when there is one
// thread per such CPU, as the web server's `--pin-cores auto` does). Connections are
// keep-alive; every request (whatever ends in a blank line) is answered with the same
// response, status 200 with Content-Length and the bytes of FILE, in one send. It
// parses nothing else, so it only fits a client that sends bodiless GETs for FILE,
// and a connection whose socket does not take a whole response at once is closed: FILE
// is meant to be small (the bench serves 1 KiB; at most 1 MiB is read).
//
// Usage: floor_server PORT FILE THREADS
// Runs until killed; exits 1 on a setup error, 2 on bad arguments.

#define _GNU_SOURCE  // accept4, CPU_* macros
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536

static char *response;
static size_t response_len;
static int port, pin;
static cpu_set_t allowed;

static void die(const char *what) {
    fprintf(stderr, "floor_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

// Pins the calling thread to the `index`-th CPU of `allowed`.
static void pin_to(long index) {
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && seen++ == index) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            if (sched_setaffinity(0, sizeof one, &one) != 0) die("sched_setaffinity");
            return;
        }
    }
}

static int listener(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) die("SO_REUSEPORT");
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
    if (listen(fd, 4096) != 0) die("listen");
    return fd;
}

// Answers the requests that end in `buf[0..n]`; `*matched` carries how much of the
// blank line ending a request the previous read ended in. False if the connection
// failed.
static int answer(int fd, const char *buf, ssize_t n, unsigned char *matched) {
    static const char end[] = "\r\n\r\n";
    for (ssize_t i = 0; i < n; i++) {
        *matched = buf[i] == end[*matched] ? *matched + 1 : (buf[i] == '\r');
        if (*matched == 4) {
            *matched = 0;
            if (send(fd, response, response_len, MSG_NOSIGNAL) != (ssize_t)response_len) {
                return 0;
            }
        }
    }
    return 1;
}

static int listeners[1024];

static void *serve(void *arg) {
    if (pin) pin_to((long)arg);
    int ls = listeners[(long)arg], ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct epoll_event e = {.events = EPOLLIN, .data.fd = ls};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e) != 0) die("epoll_ctl");
    static __thread unsigned char matched[MAX_FDS];
    static __thread char buf[1 << 16];
    struct epoll_event ev[256];
    for (;;) {
        int n = epoll_wait(ep, ev, 256, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    if (c >= MAX_FDS) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    matched[c] = 0;
                    struct epoll_event ce = {.events = EPOLLIN | EPOLLET, .data.fd = c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) != 0) close(c);
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(fd, buf, sizeof buf, 0);
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0 || !answer(fd, buf, r, &matched[fd])) {
                    close(fd);  // also leaves the epoll set
                    break;
                }
                if (r < (ssize_t)sizeof buf) break;  // the socket is drained
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    long threads = argc == 4 ? atol(argv[3]) : 0;
    port = argc == 4 ? atoi(argv[1]) : 0;
    if (threads < 1 || threads > 1024 || port < 1 || port > 65535) {
        fprintf(stderr, "usage: floor_server PORT FILE THREADS\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) die(argv[2]);
    static char body[(1 << 20) + 1];
    size_t len = fread(body, 1, sizeof body, f);
    if (ferror(f)) die(argv[2]);
    if (len > 1 << 20) {
        fprintf(stderr, "floor_server: %s: larger than 1 MiB\n", argv[2]);
        return 1;
    }
    fclose(f);
    response = malloc(len + 128);
    if (!response) die("malloc");
    response_len = (size_t)sprintf(response, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
    memcpy(response + response_len, body, len);
    response_len += len;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) die("sched_getaffinity");
    pin = CPU_COUNT(&allowed) == threads && threads > 1;
    // Every listener before any thread, so that a client that finds the port open finds
    // all of them.
    for (long i = 0; i < threads; i++) listeners[i] = listener();
    pthread_t t[1024];
    for (long i = 0; i < threads; i++) {
        if (pthread_create(&t[i], NULL, serve, (void *)i) != 0) die("pthread_create");
    }
    pthread_join(t[0], NULL);
    return 0;
}
