/*
 * fake_llama_model.c - what the fake llama-server's configuration costs in
 * memory, the log lines that report it, and the allocations that make it
 * real.
 *
 * Sizes follow contracts/memory.md: KV cache by the exact formula of §4
 * (pad256 context, unified or per-slot streams, bytes per element of the
 * cache type), model buffer = tensor bytes (FAKE_LLAMA_MODEL_BYTES, default
 * the file size), output buffer = n_vocab x slots x 4 B (§6). The compute
 * buffer has no closed formula upstream (§5); the double uses
 *   ubatch' x n_ff x 16 B + 0.01 MiB + 1 KiB per KV cell of one stream,
 *   plus n_kv x ubatch' x n_head x 4 B without flash attention,
 * which reproduces the ref-tiny figures of §5 exactly and ref-big within
 * 10 %. With -ngl > 0 and GENAI_FAKE_GPU set, the output layer and the last
 * ngl-1 blocks go to fake device 0 (memory.md §3), weights split evenly per
 * unit, and the allocations are registered with the fake GPU in llama.cpp's
 * order (weights, KV, compute), failing with the CUDA out-of-memory chain of
 * llama-server.md §9 when they do not fit.
 *
 * Host memory is really allocated: KV and no-mmap weights are anonymous and
 * touched (RssAnon), mmap-ed weights are the model file mapped and read
 * (RssFile), the compute buffer is reserved but not touched (§13). Every
 * host allocation is scaled by FAKE_LLAMA_MEM_SCALE so tests stay small.
 */
#include "fake_llama.h"

#include "sys/fakegpu.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB_F(b) ((double)(b) / 1048576.0)

static uint64_t host_model_bytes;
static int gpu_registered;

static uint32_t pad256(uint64_t x)
{
    uint64_t p = (x + 255) / 256 * 256;
    return p > UINT32_MAX ? UINT32_MAX & ~255u : (uint32_t)p;
}

static int mmap_mode(void)
{
    return fl_cfg.load_mode == 0 || fl_cfg.load_mode == 2 || fl_cfg.load_mode == 4;
}

void fl_model_plan(void)
{
    fl_runtime *r = &fl_rt;
    uint32_t ctx = fl_cfg.ctx > 0 ? (uint32_t)fl_cfg.ctx : fl_cfg.n_ctx_train;
    r->n_slots = fl_cfg.np < 0 ? 4 : (uint32_t)fl_cfg.np;
    r->unified = fl_cfg.kvu >= 0 ? fl_cfg.kvu : fl_cfg.np < 0;
    r->n_ctx = pad256(ctx);
    if (r->unified) {
        r->cells = r->n_ctx;
        r->streams = 1;
        r->n_ctx_slot = r->n_ctx;
    } else {
        r->cells = pad256(r->n_ctx / r->n_slots);
        r->streams = r->n_slots;
        r->n_ctx_slot = r->cells;
        r->n_ctx = r->cells * r->n_slots;
    }
    uint64_t width = (uint64_t)fl_cfg.head_dim * fl_cfg.n_head_kv;
    uint64_t cells = (uint64_t)r->cells * r->streams * fl_cfg.n_layer;
    r->kv_k_bytes = cells * width * fl_cache_bytes32[fl_cfg.ctk] / 32;
    r->kv_v_bytes = cells * width * fl_cache_bytes32[fl_cfg.ctv] / 32;
    r->fa_on = fl_cfg.fa != FL_FA_OFF;
    uint64_t ub = (uint64_t)fl_cfg.ubatch < r->n_ctx ? (uint64_t)fl_cfg.ubatch : r->n_ctx;
    r->compute_bytes = ub * fl_cfg.n_ff * 16 + 10486 + (uint64_t)r->cells * 1024;
    if (!r->fa_on)
        r->compute_bytes += (uint64_t)r->cells * ub * fl_cfg.n_head * 4;
    r->output_bytes = (uint64_t)fl_cfg.n_vocab * r->n_slots * 4;

    uint32_t units = fl_cfg.n_layer + 1;
    uint32_t ngl = 0;
    if (fl_cfg.fake_gpu != NULL)
        ngl = fl_cfg.ngl == -1 || fl_cfg.ngl == -2 ? units : (uint32_t)fl_cfg.ngl;
    r->gpu_units = ngl > units ? units : ngl;
    uint32_t gpu_layers = r->gpu_units > 0 ? r->gpu_units - 1 : 0;
    r->gpu_model = fl_cfg.model_bytes / units * r->gpu_units;
    r->gpu_kv = fl_cfg.n_layer ? (r->kv_k_bytes + r->kv_v_bytes) / fl_cfg.n_layer * gpu_layers : 0;
    r->gpu_compute = r->gpu_units > 0 ? r->compute_bytes : 0;
    host_model_bytes = fl_cfg.model_bytes - r->gpu_model;
}

/* The §9 tail shared by every model-loading failure. */
static void load_failure_tail(const char *what)
{
    fl_log(1, 'E', "cmn  %12.12s: failed to %s model '%s'", "common_init_", what, fl_cfg.model);
    fl_log(1, 'E', "srv  %12.12s: failed to %s model, '%s'", "load_model",
           strcmp(what, "load") == 0 ? "load" : "create_context with", fl_cfg.model);
    fl_log(3, 'I', "srv  %12.12s: operator(): cleaning up before exit...", "operator()");
    fl_log(1, 'E', "srv  llama_server: exiting due to model loading error");
}

/* Checks that the model opens and starts with "GGUF". Logs the chain of §9
 * (printed twice when the --fit dry run runs first) and returns -1 if not. */
static int check_model_file(void)
{
    int times = fl_cfg.fit ? 2 : 1;
    int fd = open(fl_cfg.model, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        for (int i = 0; i < times; i++) {
            fl_log(1, 'E', "gguf_init_from_file: failed to open GGUF file '%s' (%s)", fl_cfg.model,
                   strerror(e));
            fl_log(1, 'E',
                   "llama_model_load: error loading model: llama_model_loader: failed to "
                   "load model from %s",
                   fl_cfg.model);
            fl_log(1, 'E', "llama_model_load_from_file_impl: failed to load model");
            if (i == 0 && times == 2)
                fl_log(1, 'E',
                       "common_fit_params: encountered an error while trying to fit "
                       "params to free device memory: failed to load model");
        }
        load_failure_tail("load");
        return -1;
    }
    char magic[4] = {0};
    ssize_t n = read(fd, magic, sizeof(magic));
    struct stat st;
    int have_size = fstat(fd, &st) == 0;
    close(fd);
    if (n != 4 || memcmp(magic, "GGUF", 4) != 0) {
        char shown[5] = {0};
        for (int i = 0; i < 4; i++)
            shown[i] = i < n && magic[i] >= 32 && magic[i] < 127 ? magic[i] : '?';
        for (int i = 0; i < times; i++) {
            fl_log(1, 'E',
                   "gguf_init_from_reader: invalid magic characters: '%s', expected "
                   "'GGUF'",
                   shown);
            fl_log(1, 'E',
                   "llama_model_load: error loading model: llama_model_loader: failed to "
                   "load model from %s",
                   fl_cfg.model);
            fl_log(1, 'E', "llama_model_load_from_file_impl: failed to load model");
        }
        load_failure_tail("load");
        return -1;
    }
    if (fl_cfg.model_bytes == 0 && have_size)
        fl_cfg.model_bytes = (uint64_t)st.st_size;
    return 0;
}

static void *anon(uint64_t bytes, int touch)
{
    if (bytes == 0)
        return NULL;
    void *p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return MAP_FAILED;
    if (touch)
        memset(p, 0, (size_t)bytes); /* llama.cpp zero-fills the KV cache (§4) */
    return p;
}

static void host_oom(uint64_t bytes)
{
    fl_log(1, 'E', "ggml_aligned_malloc: insufficient memory (attempted to allocate %.2f MB)",
           MIB_F(bytes));
    fl_log(1, 'E',
           "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size "
           "%" PRIu64,
           bytes);
    fl_log(1, 'E', "alloc_tensor_range: failed to allocate CPU buffer of size %" PRIu64, bytes);
    fl_log(1, 'E',
           "llama_init_from_model: failed to initialize the context: failed to allocate "
           "buffer for kv cache");
    load_failure_tail("create context with");
}

/* Registers bytes on fake device 0; logs the CUDA OOM chain on failure. */
static int gpu_alloc(uint64_t bytes, const char *what)
{
    if (bytes == 0)
        return 0;
    uint64_t free_bytes = 0;
    genai_error e;
    int rc = fakegpu_try_alloc(fl_cfg.fake_gpu, 0, (int32_t)getpid(), bytes, &free_bytes, &e);
    if (rc == 0) {
        gpu_registered = 1;
        return 0;
    }
    if (rc == GENAI_ENO_FIT) {
        fl_log(1, 'E',
               "ggml_backend_cuda_buffer_type_alloc_buffer: allocating %.2f MiB on "
               "device 0: cudaMalloc failed: out of memory",
               MIB_F(bytes));
        if (strcmp(what, "weights") == 0) {
            fl_log(1, 'E', "alloc_tensor_range: failed to allocate CUDA0 buffer of size %" PRIu64,
                   bytes);
            fl_log(1, 'E',
                   "llama_model_load: error loading model: unable to allocate CUDA0 "
                   "buffer");
            fl_log(1, 'E', "llama_model_load_from_file_impl: failed to load model");
            load_failure_tail("load");
        } else if (strcmp(what, "kv") == 0) {
            fl_log(1, 'E',
                   "llama_init_from_model: failed to initialize the context: failed to "
                   "allocate buffer for kv cache");
            load_failure_tail("create context with");
        } else {
            fl_log(1, 'E', "graph_reserve: failed to allocate compute buffers");
            fl_log(1, 'E',
                   "llama_init_from_model: failed to initialize the context: failed to "
                   "allocate compute pp buffers");
            load_failure_tail("create context with");
        }
    } else {
        fl_log(1, 'E', "ggml_cuda_init: failed to initialize CUDA: %s", e.detail);
        load_failure_tail("load");
    }
    return -1;
}

static void breakdown(void)
{
    uint64_t host_kv = fl_rt.kv_k_bytes + fl_rt.kv_v_bytes - fl_rt.gpu_kv;
    uint64_t host_compute = fl_rt.gpu_units > 0 ? fl_rt.compute_bytes / 16 : fl_rt.compute_bytes;
    fl_log(4, 'I',
           "common_memory_breakdown_print: | memory breakdown [MiB] | total   free    "
           "self   model   context   compute    unaccounted |");
    if (fl_rt.gpu_units > 0) {
        uint64_t self = fl_rt.gpu_model + fl_rt.gpu_kv + fl_rt.gpu_compute;
        fl_log(4, 'I',
               "common_memory_breakdown_print: |   - CUDA0 (Fake GPU)   | %5" PRIu64
               " = %5s + (%5" PRIu64 " = %5" PRIu64 " + %7" PRIu64 " + %6" PRIu64 ") + %10s |",
               self >> 20, "?", self >> 20, fl_rt.gpu_model >> 20, fl_rt.gpu_kv >> 20,
               fl_rt.gpu_compute >> 20, "?");
    }
    uint64_t total = host_model_bytes + host_kv + host_compute;
    fl_log(4, 'I',
           "common_memory_breakdown_print: |   - Host               | %20" PRIu64 " = %5" PRIu64
           " + %7" PRIu64 " + %6" PRIu64 "                |",
           total >> 20, host_model_bytes >> 20, host_kv >> 20, host_compute >> 20);
}

static long mem_total_mib(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (long)((uint64_t)pages * (uint64_t)size >> 20) : 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int fl_model_load(void)
{
    fl_log(3, 'I', "srv  %12.12s: loading model '%s'", "load_model", fl_cfg.model);
    if (check_model_file() != 0)
        return 1;
    fl_model_plan(); /* again: the file size may have set the model bytes */
    const fl_runtime *r = &fl_rt;
    uint64_t kv = r->kv_k_bytes + r->kv_v_bytes;
    uint64_t host_kv = kv - r->gpu_kv;
    uint64_t host_compute = r->gpu_units > 0 ? r->compute_bytes / 16 : r->compute_bytes;

    if (fl_cfg.fit) {
        uint64_t proj = host_model_bytes + host_kv + host_compute;
        if (r->gpu_units > 0)
            fl_log(4, 'I',
                   "common_params_fit_impl: projected to use %" PRIu64
                   " MiB of device memory vs. %s MiB of free device memory",
                   (r->gpu_model + r->gpu_kv + r->gpu_compute) >> 20, "?");
        else
            fl_log(4, 'I',
                   "common_params_fit_impl: projected to use %" PRIu64
                   " MiB of host memory vs. %ld MiB of total host memory",
                   proj >> 20, mem_total_mib());
        breakdown();
    }
    if (fl_cfg.ngl > 0 && fl_cfg.fake_gpu == NULL) {
        fl_log(2, 'W', "warning: no usable GPU found, --gpu-layers option will be ignored");
        fl_log(2, 'W',
               "warning: one possible reason is that llama.cpp was compiled without GPU "
               "support");
        fl_log(2, 'W', "warning: consult docs/build.md for compilation instructions");
    }
    fl_log(4, 'I', "print_info: file size   = %.2f MiB", MIB_F(fl_cfg.model_bytes));
    fl_log(4, 'I', "print_info: n_ctx_train      = %u", fl_cfg.n_ctx_train);
    fl_log(4, 'I', "print_info: n_layer          = %u", fl_cfg.n_layer);
    fl_log(4, 'I', "print_info: n_head_kv        = %u", fl_cfg.n_head_kv);

    /* Weights. */
    if (r->gpu_units > 0) {
        fl_log(4, 'I', "load_tensors: offloading output layer to GPU");
        fl_log(4, 'I', "load_tensors: offloading %u repeating layers to GPU", r->gpu_units - 1);
        fl_log(4, 'I', "load_tensors: offloaded %u/%u layers to GPU", r->gpu_units,
               fl_cfg.n_layer + 1);
        if (gpu_alloc(r->gpu_model, "weights") != 0)
            return 1;
        fl_log(4, 'I', "load_tensors: %12s model buffer size = %8.2f MiB", "CUDA0",
               MIB_F(r->gpu_model));
    }
    uint64_t model_host_scaled = (uint64_t)((double)host_model_bytes * fl_cfg.mem_scale);
    if (mmap_mode()) {
        int fd = open(fl_cfg.model, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
            size_t len = (size_t)st.st_size;
            if ((uint64_t)len > model_host_scaled)
                len = (size_t)model_host_scaled;
            unsigned char *p = len > 0 ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
            if (p != NULL && p != MAP_FAILED) {
                volatile unsigned char sink = 0;
                for (size_t off = 0; off < len; off += 4096)
                    sink ^= p[off];
                (void)sink;
            }
        }
        if (fd >= 0)
            close(fd);
    } else if (anon(model_host_scaled, 1) == MAP_FAILED) {
        host_oom(model_host_scaled);
        return 1;
    }
    fl_log(4, 'I', "load_tensors: %12s model buffer size = %8.2f MiB",
           mmap_mode() ? "CPU_Mapped" : "CPU", MIB_F(host_model_bytes));

    /* Context: output, KV, compute. */
    fl_log(3, 'I', "cmn  %12.12s: llama threadpool init, n_threads = %d", "init",
           fl_cfg.threads > 0 ? fl_cfg.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    if (r->n_ctx_slot > fl_cfg.n_ctx_train)
        fl_log(2, 'W',
               "llama_context: n_ctx_seq (%u) > n_ctx_train (%u) -- possible training "
               "context overflow",
               r->n_ctx_slot, fl_cfg.n_ctx_train);
    if (!r->fa_on && fl_cfg.ctv != 0 && fl_cfg.ctv != 1 && fl_cfg.ctv != 2) {
        fl_log(1, 'E',
               "llama_init_from_model: failed to initialize the context: quantized V "
               "cache requires flash_attn to be enabled");
        load_failure_tail("create context with");
        return 1;
    }
    fl_log(4, 'I', "llama_context: %10s  output buffer size = %8.2f MiB",
           r->gpu_units > 0 ? "CUDA_Host" : "CPU", MIB_F(r->output_bytes));
    if (r->gpu_units > 0) {
        if (gpu_alloc(r->gpu_kv, "kv") != 0)
            return 1;
        fl_log(4, 'I', "llama_kv_cache: %10s KV buffer size = %8.2f MiB", "CUDA0",
               MIB_F(r->gpu_kv));
    }
    uint64_t kv_scaled = (uint64_t)((double)host_kv * fl_cfg.mem_scale);
    if (anon(kv_scaled, 1) == MAP_FAILED) {
        host_oom(kv_scaled);
        return 1;
    }
    if (host_kv > 0)
        fl_log(4, 'I', "llama_kv_cache: %10s KV buffer size = %8.2f MiB", "CPU", MIB_F(host_kv));
    fl_log(4, 'I',
           "llama_kv_cache: size = %7.2f MiB (%6u cells, %3u layers, %2u/%u seqs), K (%s): "
           "%7.2f MiB, V (%s): %7.2f MiB",
           MIB_F(kv), r->cells, fl_cfg.n_layer, r->n_slots, r->streams, fl_cache_types[fl_cfg.ctk],
           MIB_F(r->kv_k_bytes), fl_cache_types[fl_cfg.ctv], MIB_F(r->kv_v_bytes));
    if (r->gpu_units > 0) {
        if (gpu_alloc(r->gpu_compute, "compute") != 0)
            return 1;
        fl_log(4, 'I', "sched_reserve: %10s compute buffer size = %8.2f MiB", "CUDA0",
               MIB_F(r->gpu_compute));
    }
    if (anon((uint64_t)((double)host_compute * fl_cfg.mem_scale), 0) == MAP_FAILED) {
        host_oom(host_compute);
        return 1;
    }
    fl_log(4, 'I', "sched_reserve: %10s compute buffer size = %8.2f MiB",
           r->gpu_units > 0 ? "CUDA_Host" : "CPU", MIB_F(host_compute));
    if (r->fa_on && fl_cfg.fa == FL_FA_AUTO)
        fl_log(4, 'I', "resolve_fused_ops: Flash Attention enabled");
    if (fl_cfg.load_ms > 0)
        sleep_ms(fl_cfg.load_ms);
    if (fl_cfg.cache_ram != 0)
        fl_log(4, 'I', "srv  %12.12s: prompt cache is enabled, size limit: %" PRId64 " MiB",
               "load_model", fl_cfg.cache_ram);
    fl_log(3, 'I', "srv  %12.12s: initializing, n_slots = %u, n_ctx_slot = %u, kv_unified = '%s'",
           "load_model", r->n_slots, r->n_ctx_slot, r->unified ? "true" : "false");
    return 0;
}

void fl_model_unload(void)
{
    breakdown();
    if (!gpu_registered || fl_cfg.fake_gpu == NULL)
        return;
    if (fl_cfg.gpu_hold_ms <= 0) {
        fakegpu_release(fl_cfg.fake_gpu, (int32_t)getpid(), NULL);
        return;
    }
    /* Keep the memory counted for gpu_hold_ms after the exit (a driver that
     * gives memory back late). */
    fakegpu_release_after(fl_cfg.fake_gpu, (int32_t)getpid(), (uint64_t)fl_cfg.gpu_hold_ms, NULL);
}
