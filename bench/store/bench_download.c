/*
 * bench_download.c - download throughput of store_download (SHA-256 on,
 * digest verified, fsync and rename) against `curl -s -o FILE` fetching the
 * same file from the same local server in the same run.
 *
 * Usage: bench_store_download [MiB] [rounds] [folder] [link MiB/s]
 *        (default 512 MiB, 5 rounds, a new folder under $TMPDIR or /tmp,
 *        no pacing)
 * Prints the median of each and the ratio genai / curl. The server is the
 * store tests' scripted server (tests/store/script_server.c) serving the
 * body from memory; both clients write into the same temporary folder.
 *
 * It also prints two bounds no verified, durable download can pass on this
 * machine, timed in the same run: SHA-256 of the body in memory (one stream:
 * the hash is sequential), and writing the body to the folder and fsyncing
 * it (`curl -o` leaves its bytes in the page cache; store_download must
 * have them on disk before it renames and registers). With a link rate, the
 * server paces the body (pieces every 10 ms), as a network link slower than
 * loopback would.
 */
#include "bench_util.h"
#include "script_server.h"

#include "core/alloc.h"
#include "store/digest.h"
#include "store/download.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int run_curl(const char *url, const char *out)
{
    char *argv[] = {"curl", "-s", "-f", "-o", (char *)out, (char *)url, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "curl", NULL, NULL, argv, environ) != 0)
        return -1;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int write_durably(const char *path, const unsigned char *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < (512u << 10) ? len - off : (512u << 10);
        ssize_t w = pwrite(fd, b + off, n, (off_t)off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 512;
    long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 5;
    long rate = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
    if (mib <= 0 || mib > 16384 || rounds <= 0 || rounds > 50 || rate < 0 || rate > 100000) {
        fprintf(stderr, "usage: bench_store_download [MiB 1..16384] [rounds 1..50] [folder] "
                        "[link MiB/s]\n");
        return 2;
    }
    size_t len = (size_t)mib << 20;
    unsigned char *body = malloc(len);
    if (body == NULL)
        return 1;
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body[i] = (unsigned char)x;
    }
    /* The digest genai must verify, and the hash's own speed: best of three. */
    store_sha256 h = {0};
    char sha[STORE_SHA256_HEX];
    double t_sha = 0;
    if (store_sha256_init(&h) < 0)
        return 1;
    for (int k = 0; k < 3; k++) {
        int64_t t0 = bench_now_ns();
        if (store_sha256_update(&h, body, len) < 0 || store_sha256_final(&h, sha) < 0)
            return 1;
        double t = (double)(bench_now_ns() - t0) / 1e9;
        if (k == 0 || t < t_sha)
            t_sha = t;
    }
    store_sha256_free(&h);

    char dir[512];
    const char *base = argc > 3 ? argv[3] : getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/genai-bench-dl-XXXXXX", base != NULL ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror(dir);
        return 1;
    }
    /* The folder's durable write speed: pwrite in curl-sized pieces, fsync. */
    double t_disk = 0;
    for (int k = 0; k < 2; k++) {
        char probe[600];
        snprintf(probe, sizeof(probe), "%s/disk-probe", dir);
        int64_t t0 = bench_now_ns();
        if (write_durably(probe, body, len) < 0) {
            perror(probe);
            return 1;
        }
        double t = (double)(bench_now_ns() - t0) / 1e9;
        unlink(probe);
        if (k == 0 || t < t_disk)
            t_disk = t;
    }
    ss_server *srv = ss_start();
    if (srv == NULL)
        return 1;
    struct ss_route r = ss_route_file("/big.gguf", body, len);
    if (rate > 0) {
        r.trickle_bytes = (size_t)rate * 1024 * 1024 / 100; /* per 10 ms */
        r.trickle_ms = 10;
    }
    ss_route_add(srv, &r);
    char url[128], dest[600], curl_out[600];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/big.gguf", ss_port(srv));
    snprintf(dest, sizeof(dest), "%s/genai.gguf", dir);
    snprintf(curl_out, sizeof(curl_out), "%s/curl.gguf", dir);

    store_net net;
    store_net_defaults(&net);
    net.allow_http = 1;
    store_fetch f = {.url = url,
                     .dest = dest,
                     .name = "big.gguf",
                     .expected_sha256 = sha,
                     .expected_size = len,
                     .file_index = 1,
                     .file_count = 1};
    double *tg = calloc((size_t)rounds, sizeof(double));
    double *tc = calloc((size_t)rounds, sizeof(double));
    int rc = 0;
    for (long i = 0; i < rounds && rc == 0; i++) {
        /* alternate the order so neither always runs on a warmer cache */
        for (int k = 0; k < 2 && rc == 0; k++) {
            int genai_turn = (int)((i + k) % 2);
            unlink(dest);
            unlink(curl_out);
            int64_t t0 = bench_now_ns();
            if (genai_turn) {
                store_fetch_result res;
                genai_error e;
                if (store_download(&net, &f, &res, &e) < 0) {
                    fprintf(stderr, "genai: %s\n", e.detail);
                    rc = 1;
                }
                tg[i] = (double)(bench_now_ns() - t0) / 1e9;
            } else {
                if (run_curl(url, curl_out) < 0) {
                    fprintf(stderr, "curl failed\n");
                    rc = 1;
                }
                tc[i] = (double)(bench_now_ns() - t0) / 1e9;
            }
        }
    }
    unlink(dest);
    unlink(curl_out);
    rmdir(dir);
    ss_stop(srv);
    if (rc == 0) {
        qsort(tg, (size_t)rounds, sizeof(double), bench_cmp_double);
        qsort(tc, (size_t)rounds, sizeof(double), bench_cmp_double);
        double mg = tg[rounds / 2], mc = tc[rounds / 2];
        printf("file %ld MiB, %ld rounds (median), folder %s, link %s\n", mib, rounds, dir,
               rate > 0 ? argv[4] : "unpaced");
        printf("curl -o         %8.1f MiB/s  (%.3f s)\n", (double)mib / mc, mc);
        printf("store_download  %8.1f MiB/s  (%.3f s, SHA-256 + verify + fsync)\n",
               (double)mib / mg, mg);
        printf("SHA-256 alone   %8.1f MiB/s  (%.3f s, in memory, best of 3)\n", (double)mib / t_sha,
               t_sha);
        printf("write + fsync   %8.1f MiB/s  (%.3f s, the folder alone, best of 2)\n",
               (double)mib / t_disk, t_disk);
        printf("ratio genai/curl: %.2fx\n", mc / mg);
        /* A verified, durable download takes at least as long as either:
         * below 1, a bound divides the ratio genai can reach. */
        double worst = t_sha > t_disk ? t_sha : t_disk;
        printf("bound: %.2fx (SHA-256 alone %.2fx, write + fsync alone %.2fx)%s\n", mc / worst,
               mc / t_sha, mc / t_disk, mc / worst >= 1.0 ? "; neither limits here" : "");
    }
    free(tg);
    free(tc);
    free(body);
    return rc;
}
