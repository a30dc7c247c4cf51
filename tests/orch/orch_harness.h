/*
 * orch_harness.h - what the orchestrator's process tests share: a private
 * directory with a fake GPU file, model fixtures for fake-llama-server (a
 * sparse GGUF whose shape the double is told through FAKE_LLAMA_*) and
 * fake-sd-cli (a fake model text file), the orchestrator on a uv loop run by
 * the test thread itself (so switches set with setenv between steps reach
 * the next child without racing another thread), a record of every event,
 * and the leak checks (every child pid gone, the fd count back).
 */
#ifndef GENAI_TESTS_ORCH_HARNESS_H
#define GENAI_TESTS_ORCH_HARNESS_H

#include "orch/orch.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct oh_event {
    orch_event ev; /* reason points at text below */
    char text[2048];
    uint64_t at_ms;
} oh_event;

typedef struct oh oh;
typedef void (*oh_event_hook)(oh *h, const orch_event *ev);

struct oh {
    uv_loop_t uv;
    uv_timer_t tick;
    orch *o;
    char dir[256];
    char gpu[300];
    char llm_model[300];
    char sd_model[300];
    char sd_bad_model[300];   /* declares a UNet far larger than the size hook says */
    char sd_small_model[300]; /* fits beside the LLM with the text encoder on the CPU */
    plan_sd_model sd_sizes;   /* what the size hook reports */
    uint64_t llm_file_bytes;
    oh_event *ev;
    size_t n_ev, cap_ev;
    pid_t pids[4096];
    size_t n_pids;
    oh_event_hook hook;
    void *user;
    int fds_before;
};

/* The 12B-like model of the scenario: 48 layers, n_embd 5120, 40 heads, 8
 * KV heads, n_ff as given, 65536 tokens, Q4_K, training context 4096. */
#define OH_N_LAYER 48

/* Makes the directory, points GENAI_LLAMA_SERVER / GENAI_SD_CLI at the
 * doubles and clears every FAKE_* switch. */
void oh_setup(oh *h);
/* Writes the fake GPU file (one device of total bytes) and sets GENAI_FAKE_GPU. */
void oh_fake_gpu(oh *h, uint64_t total);
/* Writes the LLM fixture with feed-forward width n_ff and sets the double's
 * shape switches to match. */
void oh_write_llm(oh *h, uint32_t n_ff);
/* Writes the SDXL-like image fixtures (te 1200 MiB, UNet 1600 MiB, VAE
 * decoder 95 MiB; the bad one declares a 9000 MiB UNet; the small one te
 * 600, UNet 300, VAE 50 MiB) and the sizes the size hook reports. */
void oh_write_sd(oh *h);
/* A default LLM configuration for the fixture. */
void oh_llm_config(oh *h, llm_rt_config *cfg);
/* Options with the harness's callbacks and short test timings. */
void oh_opts(oh *h, orch_opts *o);
/* Creates the orchestrator. */
void oh_start(oh *h, const orch_opts *opts);
/* Runs the loop until pred(h, arg) or timeout_ms: 0 or -1 (timed out). */
int oh_run_until(oh *h, int (*pred)(oh *h, void *arg), void *arg, int timeout_ms);
/* Runs the loop until the LLM is in state st: 0 or -1. */
int oh_wait_llm(oh *h, orch_llm_state st, int timeout_ms);
/* Runs the loop until n events of type t were recorded: 0 or -1. */
int oh_wait_events(oh *h, orch_event_type t, size_t n, int timeout_ms);
/* Number of events of type t, and the i-th (0-based) of them or NULL. */
size_t oh_count(const oh *h, orch_event_type t);
const oh_event *oh_nth(const oh *h, orch_event_type t, size_t i);
/* Remembers a child pid for the leak check. */
void oh_note_pid(oh *h, pid_t pid);
/* Bytes the fake GPU lists for pid (held allocations). */
uint64_t oh_gpu_bytes_of(oh *h, pid_t pid);
/* An image request for the fixture (512x512, 4 steps, fixed seed); model:
 * OH_SD_NORMAL, OH_SD_BAD (dies on a real out-of-memory) or OH_SD_SMALL. */
enum { OH_SD_NORMAL = 0, OH_SD_BAD = 1, OH_SD_SMALL = 2 };
void oh_image_request(oh *h, img_request *r, int model);
/* Frees the orchestrator, runs the loop dry, and checks that every child
 * seen is gone and the fd count is back; removes the directory. */
void oh_done(oh *h);

/* The size hook (arg = the harness). */
int oh_size_hook(void *arg, const img_request *req, plan_sd_model *out, genai_error *err);

#endif
