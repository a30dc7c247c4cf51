/*
 * isolate.h - what keeps a llama-server child private and predictable: a
 * loopback port of genai's choosing, a random API key, and a controlled
 * environment (contracts/llama-server.md §3, §7, §10).
 *
 * Port: picked by a bind test on 127.0.0.1 inside a validated range. The test
 * is inherently racy (another process can take the port before the child
 * binds), so the supervisor retries with a new port when the child exits with
 * the "couldn't bind HTTP server socket" signature (llm/crash.h).
 *
 * Environment: llama-server reads LLAMA_ARG_* for most flags, LLAMA_API_KEY,
 * HF_TOKEN and AIP_* (Vertex mode replaces the port), and a config.ini under
 * ${XDG_CONFIG_HOME:-$HOME/.config}/llama.cpp/. The child gets the parent's
 * environment without those, with HOME and XDG_CONFIG_HOME pointing at a
 * genai-owned directory that holds no llama.cpp/config.ini.
 */
#ifndef GENAI_LLM_ISOLATE_H
#define GENAI_LLM_ISOLATE_H

#include "core/error.h"

#include <stdint.h>

/* IANA's dynamic/private port range. */
#define LLM_PORT_PRIVATE_LO 49152u
#define LLM_PORT_PRIVATE_HI 65535u
/* Never pick a privileged or well-known port. */
#define LLM_PORT_FLOOR 1024u

typedef struct llm_port_range {
    uint16_t lo, hi; /* inclusive */
} llm_port_range;

/* Checks lo <= hi and lo >= LLM_PORT_FLOOR. GENAI_EBAD_ARG otherwise. */
int llm_port_range_validate(uint32_t lo, uint32_t hi, genai_error *err);

/*
 * The private range minus the kernel's ephemeral range where the two overlap
 * (ephemeral_text is the content of /proc/sys/net/ipv4/ip_local_port_range,
 * "32768\t60999\n"; NULL or unparsable: no exclusion). Outgoing connections
 * take ephemeral ports, so a port outside that range cannot be grabbed by one
 * between the test and the child's bind. When the exclusion leaves nothing,
 * the whole private range is used. Always succeeds.
 */
void llm_port_range_default(const char *ephemeral_text, llm_port_range *out);

/* Same, reading /proc/sys/net/ipv4/ip_local_port_range. */
void llm_port_range_system(llm_port_range *out);

/* Finds a port in r that can be bound and listened on at 127.0.0.1 right
 * now, starting at a random offset. -EADDRINUSE when every port of the range
 * is taken (after at most 4096 tries), GENAI_EBAD_ARG for a bad range. */
int llm_port_pick(const llm_port_range *r, uint16_t *out, genai_error *err);

#define LLM_API_KEY_BYTES 32
#define LLM_API_KEY_LEN (2 * LLM_API_KEY_BYTES) /* hex characters */

/* Writes a fresh key of LLM_API_KEY_LEN lowercase hex characters plus NUL,
 * from getrandom(2). Negative errno when the kernel gives no randomness. */
int llm_api_key_new(char out[LLM_API_KEY_LEN + 1], genai_error *err);

/* 1 when the variable definition "NAME=value" (or a bare name) is one the
 * child must not inherit. */
int llm_env_is_scrubbed(const char *entry);

/*
 * Builds the child's environment: every entry of base (NULL-terminated, e.g.
 * environ) that is not scrubbed and is not HOME or XDG_CONFIG_HOME, then
 * HOME=<home_dir>, XDG_CONFIG_HOME=<home_dir>/.config, then the "NAME=value"
 * entries of set (may be NULL), which replace same-named entries and may
 * deliberately pass a scrubbed name (LLAMA_API_KEY); set must not name HOME or
 * XDG_CONFIG_HOME. home_dir
 * must be absolute; GENAI_EBAD_ARG when it is not, or when
 * <home_dir>/.config/llama.cpp/config.ini exists. The directory itself need
 * not exist. On success *out is a NULL-terminated array of owned strings,
 * freed with llm_env_free().
 */
int llm_env_build(const char *const *base, const char *home_dir, const char *const *set,
                  char ***out, genai_error *err);

/* Frees an array from llm_env_build. Accepts NULL. */
void llm_env_free(char **env);

#endif
