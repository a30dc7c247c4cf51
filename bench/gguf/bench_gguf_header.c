/*
 * bench_gguf_header.c - how long gguf_open() takes on the header of a large
 * model, against a baseline measured in the same run: open + pread of the
 * same header bytes into a ready buffer + close (the I/O the reader cannot
 * avoid); baseline 2 reads the same bytes into freshly allocated memory, as
 * the reader must (page faults included). Also the reader's memory relative to the header size.
 *
 * The model: a 150,000-token BPE vocabulary (tokens, token types, 150,000
 * merges), the usual llama keys and 1,000 Q4_K tensors of 4096 x 4096 whose
 * data is a hole (about 9.4 GB apparent, nothing written), made with the
 * writer in $TMPDIR (or /tmp) and removed at the end.
 *
 *   bench_gguf_header [RUNS]     (default 200)
 *   (bench_gguf_header --peak FILE is the child that measures peak memory)
 *
 * Prints the medians of wall and thread CPU time (the CPU figure is robust
 * to a busy machine, the wall figure includes waiting for the disk), the ratio reader / baseline,
 * whether the reader met the 5 ms budget of the issue, and the peak RSS growth during one open
 * (VmHWM, reset through /proc/self/clear_refs) and the heap the result keeps, each divided by the
 * header size.
 */
#include "bench_util.h"

#include "core/alloc.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_VOCAB 150000
#define N_TENSORS 1000

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A kB field of /proc/self/status; -1 when unavailable. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

static int reset_hwm(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok ? 0 : -1;
}

static int make_model(const char *path)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
    gguf_writer *w;
    if (gguf_writer_new(&w) != 0)
        return -1;
    char **toks = mem_calloc(N_VOCAB, sizeof(*toks));
    char **merges = mem_calloc(N_VOCAB, sizeof(*merges));
    int32_t *types = mem_calloc(N_VOCAB, sizeof(*types));
    int rc = -1;
    if (toks == NULL || merges == NULL || types == NULL)
        goto out;
    for (uint32_t i = 0; i < N_VOCAB; i++) {
        /* BPE-like pieces of 2..9 bytes: "Ġ" marks a leading space. */
        char t[32], m[40];
        uint32_t len = 2 + i % 8, x = i;
        size_t at = (i % 3 == 0) ? (size_t)snprintf(t, sizeof(t), "\xc4\xa0") : 0;
        for (uint32_t k = 0; k < len; k++, x /= 26)
            t[at++] = letters[(x + k) % 26];
        t[at] = '\0';
        snprintf(m, sizeof(m), "%.*s %s", 2, t, t + 2);
        toks[i] = mem_strdup(t);
        merges[i] = mem_strdup(m);
        types[i] = 1;
        if (toks[i] == NULL || merges[i] == NULL)
            goto out;
    }
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_str(w, "general.name", "bench 150k vocab");
    gguf_writer_add_u32(w, "llama.block_count", 100);
    gguf_writer_add_u32(w, "llama.embedding_length", 4096);
    gguf_writer_add_u32(w, "llama.feed_forward_length", 14336);
    gguf_writer_add_u32(w, "llama.attention.head_count", 32);
    gguf_writer_add_u32(w, "llama.attention.head_count_kv", 8);
    gguf_writer_add_u32(w, "llama.context_length", 131072);
    gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)toks, N_VOCAB);
    gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_VAL_INT32, types, N_VOCAB);
    gguf_writer_add_str_array(w, "tokenizer.ggml.merges", (const char *const *)merges, N_VOCAB);
    uint64_t ne[] = {4096, 4096};
    for (int i = 0; i < N_TENSORS; i++) {
        char name[64];
        snprintf(name, sizeof(name), "blk.%d.t%d.weight", i / 10, i % 10);
        if (gguf_writer_add_tensor(w, name, GGUF_DT_Q4_K, 2, ne, NULL) != 0)
            goto out;
    }
    rc = gguf_writer_write(w, path, NULL);
out:
    for (uint32_t i = 0; toks != NULL && merges != NULL && i < N_VOCAB; i++) {
        mem_free(toks[i]);
        mem_free(merges[i]);
    }
    mem_free(toks);
    mem_free(merges);
    mem_free(types);
    gguf_writer_free(w);
    return rc;
}

/* Child mode: one gguf_open() in a fresh process, VmHWM growth printed. */
static int peak(const char *path)
{
    long rss0 = status_kb("VmRSS");
    if (reset_hwm() != 0 || rss0 <= 0)
        return 1;
    gguf_file *f;
    if (gguf_open(path, &f, NULL) != 0)
        return 1;
    long hwm = status_kb("VmHWM");
    uint64_t header = gguf_data_offset(f);
    gguf_close(f);
    printf("peak RSS growth during one open (fresh process): %ld KiB = %.2f x header\n", hwm - rss0,
           (hwm - rss0) * 1024.0 / (double)header);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--peak") == 0)
        return peak(argv[2]);
    int runs = argc > 1 ? bench_arg_int("bench_gguf_header", argv[1], 5, 100000) : 200;
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench-gguf-%ld.gguf", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    if (make_model(path) != 0) {
        fprintf(stderr, "bench_gguf_header: cannot write %s\n", path);
        return 1;
    }
    gguf_file *f;
    genai_error err;
    if (gguf_open(path, &f, &err) != 0) {
        fprintf(stderr, "bench_gguf_header: %s\n", err.detail);
        unlink(path);
        return 1;
    }
    uint64_t header = gguf_data_offset(f), fsize = gguf_file_size(f);
    gguf_close(f);

    double *base = mem_calloc((size_t)runs, sizeof(double));
    double *rd = mem_calloc((size_t)runs, sizeof(double));
    double *cbase = mem_calloc((size_t)runs, sizeof(double));
    double *crd = mem_calloc((size_t)runs, sizeof(double));
    double *calloc_rd = mem_calloc((size_t)runs, sizeof(double));
    uint8_t *buf = mem_alloc((size_t)header);
    if (base == NULL || rd == NULL || cbase == NULL || crd == NULL || calloc_rd == NULL ||
        buf == NULL)
        return 1;
    memset(buf, 0, (size_t)header);
    /* Interleaved so that both see the same cache and machine state. */
    for (int i = 0; i < runs; i++) {
        double c0 = cpu_ms(), t0 = bench_now_ms();
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t got = 0;
        while (fd >= 0 && got < header) {
            ssize_t n = pread(fd, buf + got, (size_t)header - got, (off_t)got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (fd >= 0)
            close(fd);
        double c1 = cpu_ms(), t1 = bench_now_ms();
        /* Baseline 2: the same read into freshly allocated memory, as the
         * reader must (page faults included). */
        uint8_t *fresh = mem_alloc((size_t)header);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        got = 0;
        while (fresh != NULL && fd >= 0 && got < header) {
            ssize_t n = pread(fd, fresh + got, (size_t)header - got, (off_t)got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (fd >= 0)
            close(fd);
        mem_free(fresh);
        double c1b = cpu_ms();
        calloc_rd[i] = c1b - c1;
        c1 = c1b;
        t1 = bench_now_ms();
        if (gguf_open(path, &f, NULL) != 0)
            return 1;
        gguf_close(f);
        double c2 = cpu_ms(), t2 = bench_now_ms();
        base[i] = t1 - t0;
        rd[i] = t2 - t1;
        cbase[i] = c1 - c0;
        crd[i] = c2 - c1;
    }
    double mb = bench_median(base, runs), mr = bench_median(rd, runs);
    double cb = bench_median(cbase, runs), cr = bench_median(crd, runs),
           cf = bench_median(calloc_rd, runs);

    if (gguf_open(path, &f, NULL) != 0)
        return 1;
    uint64_t heap = gguf_heap_bytes(f), meta = gguf_meta_bytes(f);
    gguf_close(f);

    printf("file: %" PRIu64 " bytes apparent, %d tensors, %d-token vocabulary + %d merges\n", fsize,
           N_TENSORS, N_VOCAB, N_VOCAB);
    printf("header (metadata + tensor table): %" PRIu64 " bytes (%.2f MiB)\n", header,
           header / 1048576.0);
    printf("runs: %d (interleaved)\n", runs);
    printf("baseline open+pread+close of the header: median %.3f ms wall, %.3f ms CPU\n", mb, cb);
    printf("gguf_open + gguf_close:                  median %.3f ms wall, %.3f ms CPU\n", mr, cr);
    printf("baseline 2, the same into fresh memory:  median %.3f ms CPU\n", cf);
    printf("ratio reader / baseline: %.2f wall, %.2f CPU (%.2f CPU against baseline 2)\n", mr / mb,
           cr / cb, cr / cf);
    printf("budget 5 ms (wall median): %s\n", mr < 5.0 ? "met" : "MISSED");
    printf("heap kept by the parse: %" PRIu64 " bytes = %.2f x header (window %" PRIu64 " bytes)\n",
           heap, (double)heap / header, meta);
    fflush(stdout);
    /* Peak memory in a fresh process, so that no heap freed by the runs above
     * hides the growth. */
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = {argv[0], "--peak", path, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        printf("peak RSS growth: unavailable\n");
    mem_free(base);
    mem_free(rd);
    mem_free(cbase);
    mem_free(crd);
    mem_free(calloc_rd);
    mem_free(buf);
    unlink(path);
    return 0;
}
