/*
 * guard.c - request checks: API key, Host, Origin, bounded JSON (see guard.h).
 *
 * Why the Host check: a web page on evil.example can make the browser
 * resolve evil.example to 127.0.0.1 after the page loaded (DNS rebinding)
 * and then talk to a loopback server as "same origin". The browser still
 * sends "Host: evil.example", so a loopback server that only accepts its own
 * names cannot be reached that way. IP literals are safe: they cannot be
 * rebound.
 *
 * Why the JSON pre-scan: jansson 2.14 has no depth option (only a fixed
 * internal limit of 2048 and recursion to reach it), so the depth is checked
 * first by a linear scan that allocates nothing.
 */
#include "http/guard.h"

#include <arpa/inet.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int guard_secret_equal(const char *presented, size_t plen, const char *expected, size_t elen)
{
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(presented ? presented : ""), presented ? plen : 0, a);
    SHA256((const unsigned char *)(expected ? expected : ""), expected ? elen : 0, b);
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < sizeof(a); i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int guard_bearer_ok(const char *authorization, const char *key)
{
    if (authorization == NULL || key == NULL)
        return 0;
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return 0;
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    size_t n = strlen(tok);
    while (n > 0 && tok[n - 1] == ' ')
        n--;
    return guard_secret_equal(tok, n, key, strlen(key));
}

/* Splits a Host value into name (without brackets for IPv6) and port.
 * *port = 0 when absent. 0 on success, -1 when malformed. */
static int split_host(const char *host, char *name, size_t namesz, int *bracketed, unsigned *port)
{
    const char *end;
    const char *portp = NULL;
    *bracketed = 0;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (close == NULL)
            return -1;
        *bracketed = 1;
        host++;
        end = close;
        if (close[1] == ':')
            portp = close + 2;
        else if (close[1] != '\0')
            return -1;
    } else {
        const char *colon = strchr(host, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            return -1; /* a bare IPv6 address is not a valid Host */
        end = colon ? colon : host + strlen(host);
        portp = colon ? colon + 1 : NULL;
    }
    size_t n = (size_t)(end - host);
    if (n == 0 || n >= namesz)
        return -1;
    memcpy(name, host, n);
    name[n] = '\0';
    *port = 0;
    if (portp != NULL) {
        if (*portp == '\0' || strlen(portp) > 5)
            return -1;
        unsigned v = 0;
        for (const char *p = portp; *p != '\0'; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v == 0 || v > 65535)
            return -1;
        *port = v;
    }
    return 0;
}

/* One allowed_hosts entry against the split Host. */
static int entry_matches(const char *entry, const char *name, unsigned port)
{
    char ename[256];
    unsigned eport = 0;
    int br = 0;
    if (strcmp(entry, "*") == 0)
        return 1;
    if (split_host(entry, ename, sizeof(ename), &br, &eport) < 0)
        return 0;
    if (strcasecmp(ename, name) != 0)
        return 0;
    return eport == 0 || port == 0 || eport == port;
}

int guard_host_ok(const char *host, unsigned port, const config_list *allowed)
{
    if (host == NULL)
        return 1;
    char name[256];
    unsigned hport = 0;
    int bracketed = 0;
    if (split_host(host, name, sizeof(name), &bracketed, &hport) < 0)
        return 0;
    if (allowed != NULL)
        for (size_t i = 0; i < allowed->n; i++)
            if (entry_matches(allowed->items[i], name, hport))
                return 1;
    if (hport != 0 && hport != port)
        return 0;
    if (strcasecmp(name, "localhost") == 0)
        return 1;
    unsigned char buf[sizeof(struct in6_addr)];
    if (bracketed)
        return inet_pton(AF_INET6, name, buf) == 1;
    /* inet_pton takes only the dotted quad, not "127.1" or "0x7f.1". */
    return inet_pton(AF_INET, name, buf) == 1;
}

int guard_origin_ok(const char *origin, const config_list *allowed)
{
    if (origin == NULL || allowed == NULL)
        return 0;
    for (size_t i = 0; i < allowed->n; i++)
        if (strcmp(allowed->items[i], "*") == 0 || strcasecmp(allowed->items[i], origin) == 0)
            return 1;
    return 0;
}

size_t guard_json_depth(const char *text, size_t len, size_t max_depth)
{
    size_t depth = 0, max_seen = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++; /* skip the escaped byte; \uXXXX digits are harmless */
            else if (c == '"')
                in_string = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max_seen) {
                max_seen = depth;
                if (max_seen > max_depth)
                    return max_depth + 1;
            }
            break;
        case ']':
        case '}':
            /* Unbalanced closers are jansson's to report. */
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
    }
    return max_seen;
}

int guard_json_parse(const char *text, size_t len, size_t max_depth, json_t **out, genai_error *err)
{
    if (guard_json_depth(text, len, max_depth) > max_depth)
        return err_set(err, GENAI_ETOO_LARGE, "JSON nested deeper than %zu levels", max_depth);
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (v == NULL)
        return err_set(err, GENAI_ECORRUPT, "invalid JSON at line %d, column %d: %s", jerr.line,
                       jerr.column, jerr.text);
    *out = v;
    return 0;
}
