/*
 * cmd_system.c - `genai system`: what this machine has for running models.
 *
 * Takes one probe snapshot and prints CPU, host memory (with the cgroup
 * limit), every GPU with total/free/used and per-process use, one status line
 * per GPU provider (with the reason when it is unavailable) and the runtime
 * build that fits. --json prints the snapshot's JSON (docs/system.md).
 *
 * Then genai's share (docs/budgets.md): the configured budgets and reserves
 * resolved against this snapshot, genai's own use (the running daemon's
 * children: their listed GPU use and their RSS) against everyone else's, and
 * how much more genai may plan now, computed by the planner's fit rules.
 */
#include "cli.h"

#include "cli/daemon_client.h"
#include "core/alloc.h"
#include "core/config.h"
#include "plan/budget.h"
#include "sys/probe.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai system [--json] [--help]\n\n"
                 "Show CPUs, memory (with the cgroup limit) and GPUs with their memory and\n"
                 "processes, the status of each GPU provider, and the runtime build that fits.\n\n"
                 "  --json   print the probe snapshot as JSON (sizes in bytes)\n"
                 "  --help   show this help\n\n"
                 "Environment: GENAI_NVML_LIBRARY (path of libnvidia-ml.so.1),\n"
                 "GENAI_FAKE_GPU (a fake GPU file, used instead of real GPUs; for tests).\n");
}

static const char *bytes_or(char *buf, size_t bufsz, int known, uint64_t v)
{
    if (!known)
        return "unknown";
    return cli_fmt_bytes(buf, bufsz, (unsigned long long)v);
}

static void print_count(const char *label, uint32_t n, const char *what)
{
    if (n != 0)
        printf("  %-10s %u %s\n", label, n, what);
    else
        printf("  %-10s unknown\n", label);
}

static void print_cpu(const probe_cpu *c)
{
    printf("CPU\n");
    printf("  model      %s\n", c->model[0] ? c->model : "unknown");
    print_count("logical", c->logical, "online");
    print_count("physical", c->physical, "cores");
    print_count("usable", c->usable, "(affinity and cgroup quota)");
    printf("  features  %s%s%s%s%s%s%s\n", c->avx ? " avx" : "", c->avx2 ? " avx2" : "",
           c->avx512f ? " avx512f" : "", c->fma ? " fma" : "", c->f16c ? " f16c" : "",
           c->neon ? " neon" : "",
           (c->avx | c->avx2 | c->avx512f | c->fma | c->f16c | c->neon) ? "" : " none found");
    if (!c->status.ok)
        printf("  note       %s\n", c->status.reason);
}

static void print_memory(const probe_host_memory *m)
{
    char a[32], b[32];
    printf("\nMemory\n");
    printf("  total      %s\n", bytes_or(a, sizeof(a), m->known & PROBE_MEM_TOTAL, m->total));
    printf("  available  %s (MemAvailable)\n",
           bytes_or(a, sizeof(a), m->known & PROBE_MEM_AVAILABLE, m->available));
    printf("  swap       %s free of %s\n",
           bytes_or(a, sizeof(a), m->known & PROBE_MEM_SWAP_FREE, m->swap_free),
           bytes_or(b, sizeof(b), m->known & PROBE_MEM_SWAP_TOTAL, m->swap_total));
    if (!m->cgroup.ok)
        printf("  cgroup     unknown: %s\n", m->cgroup.reason);
    else if (m->cgroup_limit == UINT64_MAX)
        printf("  cgroup     v%d, no memory limit\n", m->cgroup_version);
    else
        printf("  cgroup     v%d, limit %s, in use %s\n", m->cgroup_version,
               cli_fmt_bytes(a, sizeof(a), m->cgroup_limit),
               cli_fmt_bytes(b, sizeof(b), m->cgroup_usage));
    int eff = (m->known & PROBE_MEM_AVAILABLE) || (m->cgroup.ok && m->cgroup_limit != UINT64_MAX);
    printf("  usable     %s (for models)\n", bytes_or(a, sizeof(a), eff, m->effective_available));
    if (!m->status.ok)
        printf("  note       %s\n", m->status.reason);
}

static const char *vendor_label(enum probe_gpu_vendor v)
{
    return v == PROBE_GPU_NVIDIA ? "NVIDIA" : v == PROBE_GPU_AMD ? "AMD" : "fake";
}

static void print_gpus(const probe_snapshot *s)
{
    char a[32], b[32], c[32];
    printf("\nGPUs\n");
    if (s->n_gpus == 0)
        printf("  none found\n");
    for (uint32_t i = 0; i < s->n_gpus; i++) {
        const probe_gpu *g = &s->gpus[i];
        printf("  [%u] %s %s", i, vendor_label(g->vendor), g->name[0] ? g->name : "(no name)");
        if (g->pci_bus_id[0])
            printf(" at %s", g->pci_bus_id);
        printf("\n");
        if (g->memory.ok)
            printf("      memory  %s total, %s free, %s used\n",
                   cli_fmt_bytes(a, sizeof(a), g->total), cli_fmt_bytes(b, sizeof(b), g->free),
                   cli_fmt_bytes(c, sizeof(c), g->used));
        else
            printf("      memory  unknown: %s\n", g->memory.reason);
        for (uint32_t k = 0; k < g->n_processes; k++) {
            const probe_gpu_process *p = &g->processes[k];
            printf("      pid %-8d %s\n", (int)p->pid,
                   bytes_or(a, sizeof(a), p->used_bytes != UINT64_MAX, p->used_bytes));
        }
        if (!g->processes_status.ok)
            printf("      processes unknown: %s\n", g->processes_status.reason);
        else if (g->n_processes == 0)
            printf("      no processes\n");
    }
}

static void print_providers(const probe_snapshot *s)
{
    printf("\nProviders\n");
    for (uint32_t i = 0; i < s->n_providers; i++) {
        const probe_provider_status *p = &s->providers[i];
        printf("  %-10s ", p->name ? p->name : "?");
        if (!p->status.ok) {
            printf("unavailable: %s\n", p->status.reason);
            continue;
        }
        printf("ok");
        if (p->driver_version[0])
            printf(", driver %s", p->driver_version);
        if (p->runtime_version[0])
            printf(", CUDA %s", p->runtime_version);
        printf("\n");
    }
}

/* genai's running processes: the daemon's children, with their RSS. */
#define OWN_MAX 64
typedef struct own_procs {
    int32_t pid[OWN_MAX];
    uint64_t rss[OWN_MAX];
    size_t n;
    pid_t daemon;
} own_procs;

/* The parent pid and RSS of pid from /proc; -1 when it is gone. */
static int proc_parent(int32_t pid, pid_t *ppid, uint64_t *rss)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
    char *close = strrchr(buf, ')');
    char state;
    long pp = 0;
    if (close == NULL || sscanf(close + 1, " %c %ld", &state, &pp) != 2)
        return -1;
    *ppid = (pid_t)pp;
    *rss = 0;
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    f = fopen(path, "re");
    if (f != NULL) {
        unsigned long long size = 0, res = 0;
        if (fscanf(f, "%llu %llu", &size, &res) == 2)
            *rss = res * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    return 0;
}

static void find_own(own_procs *o)
{
    memset(o, 0, sizeof(*o));
    daemon_info d;
    if (daemon_find(&d, NULL) != 1)
        return;
    o->daemon = d.pid;
    DIR *dir = opendir("/proc");
    if (dir == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && o->n < OWN_MAX) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        pid_t ppid;
        uint64_t rss;
        if (*end != '\0' || pid <= 0 || proc_parent((int32_t)pid, &ppid, &rss) < 0)
            continue;
        if (ppid == d.pid) {
            o->pid[o->n] = (int32_t)pid;
            o->rss[o->n++] = rss;
        }
    }
    closedir(dir);
}

/* genai's share of the machine, computed with the planner's rules. */
typedef struct share {
    plan_fit_env env;
    plan_demand held[OWN_MAX]; /* what each own process holds now */
    plan_resident res[OWN_MAX];
    plan_usage usage;
    uint64_t host_own;
} share;

static void compute_share(const probe_snapshot *snap, const own_procs *o, share *sh)
{
    memset(sh, 0, sizeof(*sh));
    for (size_t i = 0; i < o->n; i++) {
        plan_demand *d = &sh->held[i];
        d->n_gpus = snap->n_gpus < PLAN_MAX_GPUS ? snap->n_gpus : PLAN_MAX_GPUS;
        for (uint32_t g = 0; g < d->n_gpus; g++)
            for (uint32_t k = 0; k < snap->gpus[g].n_processes; k++)
                if (snap->gpus[g].processes[k].pid == o->pid[i] &&
                    snap->gpus[g].processes[k].used_bytes != UINT64_MAX)
                    d->gpu[g] += snap->gpus[g].processes[k].used_bytes;
        /* Running: its RSS is already out of MemAvailable (in_snapshot). */
        d->host_anon = o->rss[i];
        sh->host_own += o->rss[i];
        sh->res[i] = (plan_resident){d, o->pid[i], 1};
    }
    plan_fit_env_init(&sh->env, snap);
    sh->env.residents = sh->res;
    sh->env.n_residents = (uint32_t)o->n;
    plan_usage_split(snap, o->pid, o->n, &sh->usage);
}

static const char *budget_text(char *buf, size_t n, uint64_t b)
{
    if (b == PLAN_NO_BUDGET)
        return "none";
    return cli_fmt_bytes(buf, n, b);
}

static void print_share(const probe_snapshot *snap, const own_procs *o, const share *sh)
{
    char a[32], b[32], c[32], d[32];
    printf("\ngenai's share (budget.* and reserve.* in the configuration)\n");
    if (o->daemon != 0)
        printf("  daemon     pid %d, %zu child process%s\n", (int)o->daemon, o->n,
               o->n == 1 ? "" : "es");
    else
        printf("  daemon     not running: genai holds nothing\n");
    printf("  host       budget %s, reserve %s; genai holds %s; may plan %s more\n",
           budget_text(a, sizeof(a), sh->env.budget.host),
           cli_fmt_bytes(b, sizeof(b), sh->env.reserve.host),
           cli_fmt_bytes(c, sizeof(c), sh->host_own),
           cli_fmt_bytes(d, sizeof(d), plan_host_usable(&sh->env)));
    for (uint32_t g = 0; g < sh->usage.n_gpus; g++) {
        printf("  GPU %-6u budget %s, reserve %s\n", g,
               budget_text(a, sizeof(a), sh->env.budget.gpu[g]),
               cli_fmt_bytes(b, sizeof(b), sh->env.reserve.gpu[g]));
        if (!sh->usage.gpu[g].known) {
            printf("             memory unknown: genai plans nothing here\n");
            continue;
        }
        printf("             genai holds %s, other programs %s%s; may plan %s more\n",
               cli_fmt_bytes(a, sizeof(a), sh->usage.gpu[g].own),
               cli_fmt_bytes(b, sizeof(b), sh->usage.gpu[g].others + sh->usage.gpu[g].unlisted),
               sh->usage.gpu[g].listed ? "" : " (processes not listed)",
               cli_fmt_bytes(c, sizeof(c), plan_gpu_usable(&sh->env, g)));
    }
    (void)snap;
}

static json_t *budget_json(uint64_t b)
{
    return b == PLAN_NO_BUDGET ? json_null() : json_integer((json_int_t)b);
}

static json_t *share_json(const own_procs *o, const share *sh)
{
    json_t *j = json_object();
    json_t *pids = json_array();
    json_t *gpus = json_array();
    json_t *host = json_object();
    if (j == NULL || pids == NULL || gpus == NULL || host == NULL)
        goto fail;
    for (size_t i = 0; i < o->n; i++)
        json_array_append_new(pids, json_integer(o->pid[i]));
    json_object_set_new(host, "budget_bytes", budget_json(sh->env.budget.host));
    json_object_set_new(host, "reserve_bytes", json_integer((json_int_t)sh->env.reserve.host));
    json_object_set_new(host, "own_bytes", json_integer((json_int_t)sh->host_own));
    json_object_set_new(host, "usable_bytes", json_integer((json_int_t)plan_host_usable(&sh->env)));
    for (uint32_t g = 0; g < sh->usage.n_gpus; g++) {
        json_t *x = json_object();
        if (x == NULL || json_array_append_new(gpus, x) < 0)
            goto fail;
        json_object_set_new(x, "index", json_integer(g));
        json_object_set_new(x, "budget_bytes", budget_json(sh->env.budget.gpu[g]));
        json_object_set_new(x, "reserve_bytes", json_integer((json_int_t)sh->env.reserve.gpu[g]));
        json_object_set_new(x, "own_bytes", json_integer((json_int_t)sh->usage.gpu[g].own));
        json_object_set_new(x, "others_bytes", json_integer((json_int_t)sh->usage.gpu[g].others));
        json_object_set_new(x, "unlisted_bytes",
                            json_integer((json_int_t)sh->usage.gpu[g].unlisted));
        json_object_set_new(x, "usable_bytes",
                            json_integer((json_int_t)plan_gpu_usable(&sh->env, g)));
    }
    json_object_set_new(j, "daemon_pid", o->daemon ? json_integer(o->daemon) : json_null());
    json_object_set_new(j, "own_pids", pids);
    json_object_set_new(j, "host", host);
    json_object_set_new(j, "gpus", gpus);
    return j;
fail:
    json_decref(j);
    json_decref(pids);
    json_decref(gpus);
    json_decref(host);
    return NULL;
}

int cmd_system(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else {
            return cli_usage_error("system", "unknown argument '%s'", argv[i]);
        }
    }
    genai_config cfg;
    genai_error err;
    genai_error_clear(&err);
    if (config_load(&cfg, NULL, &err) == 0) {
        plan_policy pol;
        plan_policy_from_config(&cfg, &pol);
        plan_policy_set(&pol);
        config_free(&cfg);
    } else {
        fprintf(stderr, "genai system: configuration ignored: %s\n", err.detail);
    }
    probe_snapshot snap;
    int rc = probe_take(NULL, &snap, &err);
    if (rc < 0) {
        cli_report("system", rc, &err);
        return CLI_FAIL;
    }
    int status = CLI_OK;
    own_procs own;
    find_own(&own);
    share *sh = mem_calloc(1, sizeof(*sh));
    if (sh == NULL) {
        probe_snapshot_free(&snap);
        fprintf(stderr, "genai system: out of memory\n");
        return CLI_FAIL;
    }
    compute_share(&snap, &own, sh);
    if (json) {
        json_t *j = probe_snapshot_json(&snap);
        json_t *sj = share_json(&own, sh);
        if (j == NULL || sj == NULL || json_object_set_new(j, "share", sj) < 0) {
            if (j == NULL)
                json_decref(sj);
            json_decref(j);
            j = NULL;
        }
        status = cli_print_json(stdout, j);
        if (status != CLI_OK)
            fprintf(stderr, "genai system: cannot write JSON\n");
    } else {
        print_cpu(&snap.cpu);
        print_memory(&snap.mem);
        print_gpus(&snap);
        print_providers(&snap);
        const char *why = NULL;
        const char *variant = probe_runtime_variant(&snap, &why);
        printf("\nRuntime build: %s (%s)\n", variant, why);
        print_share(&snap, &own, sh);
        if (fflush(stdout) != 0)
            status = CLI_FAIL;
    }
    mem_free(sh);
    probe_snapshot_free(&snap);
    return status;
}
