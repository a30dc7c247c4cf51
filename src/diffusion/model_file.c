/*
 * model_file.c - a diffusion model's file read into one tensor name space (see
 * model_file.h).
 *
 * The format is chosen by the first four bytes ("GGUF" or not); both readers
 * read only the header. Each tensor name is then normalised by role: a file
 * registered as a component gets the prefix stable-diffusion.cpp gives it
 * unless it already carries a checkpoint prefix, and a DM_ROLE_MODEL file
 * whose names carry no checkpoint prefix at all is a standalone diffusion
 * model (city96's GGUF conversions, Black Forest Labs' flux1-*.safetensors)
 * and gets "model.diffusion_model." (or, for the names of a bare VAE, CLIP
 * or T5 release, that component's prefix). Finally every tensor is assigned the
 * component its normalised name belongs to (dm_comp_of).
 */
#include "diffusion/model_file.h"

#include "diffusion/safetensors.h"
#include "gguf/gguf.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const char *const role_names[DM_ROLE__COUNT] = {
    [DM_ROLE_MODEL] = "model", [DM_ROLE_CLIP_L] = "clip_l", [DM_ROLE_CLIP_G] = "clip_g",
    [DM_ROLE_T5XXL] = "t5xxl", [DM_ROLE_VAE] = "vae",
};

/* The prefix stable-diffusion.cpp adds to a component file's names. */
static const char *const role_prefix[DM_ROLE__COUNT] = {
    [DM_ROLE_MODEL] = "model.diffusion_model.",
    [DM_ROLE_CLIP_L] = "text_encoders.clip_l.transformer.",
    [DM_ROLE_CLIP_G] = "text_encoders.clip_g.transformer.",
    [DM_ROLE_T5XXL] = "text_encoders.t5xxl.transformer.",
    [DM_ROLE_VAE] = "first_stage_model.",
};

/* Top-level prefixes of full checkpoints (original LDM/SGM layouts, sd.cpp's
 * own conversions, and diffusers folders merged with "unet."/"vae."/"te."). */
static const char *const checkpoint_prefixes[] = {
    "model.diffusion_model.",
    "first_stage_model.",
    "cond_stage_model.",
    "conditioner.",
    "text_encoders.",
    "model_ema.",
    "unet.",
    "vae.",
    "te.",
};

/* Normalised name prefix -> component, first match wins (more specific first). */
static const struct {
    const char *prefix;
    enum dm_comp comp;
} comp_prefixes[] = {
    {"model.diffusion_model.", DM_COMP_DIFFUSION},
    {"unet.", DM_COMP_DIFFUSION},
    {"first_stage_model.", DM_COMP_VAE},
    {"vae.", DM_COMP_VAE},
    {"cond_stage_model.transformer.", DM_COMP_CLIP_L},
    {"cond_stage_model.model.", DM_COMP_OPENCLIP_H},
    {"cond_stage_model.0.", DM_COMP_CLIP_L},
    {"cond_stage_model.1.", DM_COMP_CLIP_G},
    {"conditioner.embedders.0.", DM_COMP_CLIP_L},
    {"conditioner.embedders.1.", DM_COMP_CLIP_G},
    {"text_encoders.clip_l.", DM_COMP_CLIP_L},
    {"text_encoders.clip_g.", DM_COMP_CLIP_G},
    {"text_encoders.t5xxl.", DM_COMP_T5XXL},
    {"te.1.", DM_COMP_CLIP_G},
    {"te.", DM_COMP_CLIP_L},
};

static const char *const comp_names[DM_COMP__COUNT + 1] = {
    [DM_COMP_DIFFUSION] = "diffusion_model",
    [DM_COMP_CLIP_L] = "clip_l",
    [DM_COMP_CLIP_G] = "clip_g",
    [DM_COMP_OPENCLIP_H] = "openclip_h",
    [DM_COMP_T5XXL] = "t5xxl",
    [DM_COMP_VAE] = "vae",
    [DM_COMP_OTHER] = "other",
};

const char *dm_role_name(enum dm_role role)
{
    return (unsigned)role < DM_ROLE__COUNT ? role_names[role] : "unknown";
}

int dm_role_parse(const char *text, enum dm_role *out, genai_error *err)
{
    for (unsigned i = 0; i < DM_ROLE__COUNT; i++) {
        if (text != NULL && strcmp(text, role_names[i]) == 0) {
            *out = (enum dm_role)i;
            return 0;
        }
    }
    return err_set(err, GENAI_EBAD_ARG,
                   "file role '%.64s': must be one of model, clip_l, clip_g, t5xxl, vae",
                   text != NULL ? text : "(null)");
}

const char *dm_comp_name(enum dm_comp comp)
{
    return (unsigned)comp <= DM_COMP__COUNT ? comp_names[comp] : "unknown";
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum dm_comp dm_comp_of(const char *name)
{
    for (size_t i = 0; i < sizeof(comp_prefixes) / sizeof(comp_prefixes[0]); i++) {
        if (starts_with(name, comp_prefixes[i].prefix))
            return comp_prefixes[i].comp;
    }
    return DM_COMP_OTHER;
}

static int has_checkpoint_prefix(const char *name)
{
    for (size_t i = 0; i < sizeof(checkpoint_prefixes) / sizeof(checkpoint_prefixes[0]); i++) {
        if (starts_with(name, checkpoint_prefixes[i]))
            return 1;
    }
    return 0;
}

void dm_file_free(dm_file *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        mem_free(f->tensors[i].name);
    mem_free(f->tensors);
    mem_free(f->name);
    mem_free(f->arch_hint);
    mem_free(f->title_hint);
    mem_free(f);
}

const dm_tensor *dm_file_find(const dm_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++) {
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    }
    return NULL;
}

/* Sets t->name to prefix + raw (raw_len bytes, no NUL inside). */
static int set_name(dm_tensor *t, const char *prefix, const char *raw, size_t raw_len)
{
    size_t pl = prefix != NULL ? strlen(prefix) : 0;
    t->name = mem_alloc(pl + raw_len + 1);
    if (t->name == NULL)
        return -ENOMEM;
    if (pl > 0)
        memcpy(t->name, prefix, pl);
    memcpy(t->name + pl, raw, raw_len);
    t->name[pl + raw_len] = '\0';
    return 0;
}

/* A bare name that belongs to a component release rather than to a
 * diffusion model: a VAE (ae.safetensors, sdxl_vae), a Hugging Face CLIP text
 * model or a T5 encoder given where the model was expected. Such a file is
 * read as what it is, so that detection does not take it for a DiT. */
static const char *bare_prefix(const char *raw)
{
    if (starts_with(raw, "encoder.block.") || starts_with(raw, "encoder.final_layer_norm.") ||
        starts_with(raw, "shared."))
        return role_prefix[DM_ROLE_T5XXL];
    if (starts_with(raw, "decoder.") || starts_with(raw, "encoder.") ||
        starts_with(raw, "quant_conv.") || starts_with(raw, "post_quant_conv."))
        return role_prefix[DM_ROLE_VAE];
    if (starts_with(raw, "text_model."))
        return role_prefix[DM_ROLE_CLIP_L];
    return role_prefix[DM_ROLE_MODEL];
}

/* The prefix for a raw name in a file of this role (NULL: keep it). */
static const char *prefix_for(enum dm_role role, int bare, const char *raw)
{
    if (role == DM_ROLE_MODEL)
        return bare ? bare_prefix(raw) : NULL;
    return has_checkpoint_prefix(raw) ? NULL : role_prefix[role];
}

/* Copies a GGUF tensor name (at most GGUF_MAX_TENSOR_NAME bytes, possibly
 * holding NULs) into raw as a C string, NULs replaced so that names cannot
 * alias; returns its length. */
static size_t gguf_raw_name(const gguf_tensor *t, char raw[GGUF_MAX_TENSOR_NAME + 1])
{
    size_t len = t->name.len < GGUF_MAX_TENSOR_NAME ? (size_t)t->name.len : GGUF_MAX_TENSOR_NAME;
    for (size_t k = 0; k < len; k++)
        raw[k] = t->name.ptr[k] != '\0' ? t->name.ptr[k] : '?';
    raw[len] = '\0';
    return len;
}

static int fill_from_gguf(dm_file *df, const gguf_file *g, genai_error *err)
{
    uint64_t n = gguf_n_tensors(g);
    if (n > 0 && (df->tensors = mem_calloc((size_t)n, sizeof(*df->tensors))) == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    char raw[GGUF_MAX_TENSOR_NAME + 1];
    df->bare = 1;
    for (uint64_t i = 0; df->role == DM_ROLE_MODEL && i < n; i++) {
        gguf_raw_name(gguf_tensor_at(g, i), raw);
        if (has_checkpoint_prefix(raw)) {
            df->bare = 0;
            break;
        }
    }
    if (df->role != DM_ROLE_MODEL)
        df->bare = 0;
    for (uint64_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        dm_tensor *d = &df->tensors[i];
        size_t len = gguf_raw_name(t, raw);
        if (set_name(d, prefix_for(df->role, df->bare, raw), raw, len) != 0)
            return err_set(err, -ENOMEM, "out of memory");
        df->n_tensors++;
        d->n_dims = t->n_dims;
        for (unsigned k = 0; k < DM_MAX_DIMS; k++)
            d->ne[k] = k < GGUF_MAX_DIMS ? t->ne[k] : 1;
        d->n_bytes = t->n_bytes;
        d->comp = dm_comp_of(d->name);
    }
    gguf_str s;
    if (gguf_get_str(g, "general.architecture", &s, NULL) == 0 &&
        (df->arch_hint = mem_strndup(s.ptr, (size_t)(s.len < 256 ? s.len : 256))) == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    if (gguf_get_str(g, "general.name", &s, NULL) == 0 &&
        (df->title_hint = mem_strndup(s.ptr, (size_t)(s.len < 256 ? s.len : 256))) == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    df->size = gguf_file_size(g);
    return 0;
}

static int fill_from_st(dm_file *df, const dm_st_file *st, genai_error *err)
{
    size_t n = dm_st_n_tensors(st);
    if (n > 0 && (df->tensors = mem_calloc(n, sizeof(*df->tensors))) == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    df->bare = df->role == DM_ROLE_MODEL;
    for (size_t i = 0; df->bare && i < n; i++) {
        if (has_checkpoint_prefix(dm_st_tensor_at(st, i)->name))
            df->bare = 0;
    }
    for (size_t i = 0; i < n; i++) {
        const dm_st_tensor *t = dm_st_tensor_at(st, i);
        dm_tensor *d = &df->tensors[i];
        if (set_name(d, prefix_for(df->role, df->bare, t->name), t->name, strlen(t->name)) != 0)
            return err_set(err, -ENOMEM, "out of memory");
        df->n_tensors++;
        /* Row-major shape -> ggml order. */
        d->n_dims = t->n_dims;
        for (unsigned k = 0; k < DM_MAX_DIMS; k++)
            d->ne[k] = k < t->n_dims ? t->shape[t->n_dims - 1 - k] : 1;
        d->n_bytes = t->end - t->begin;
        d->comp = dm_comp_of(d->name);
    }
    const char *v;
    if ((v = dm_st_meta_get(st, "modelspec.architecture")) != NULL &&
        (df->arch_hint = mem_strndup(v, strnlen(v, 256))) == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    if ((v = dm_st_meta_get(st, "modelspec.title")) != NULL &&
        (df->title_hint = mem_strndup(v, strnlen(v, 256))) == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    df->size = dm_st_file_size(st);
    return 0;
}

static dm_file *new_file(const char *path_or_name, enum dm_role role)
{
    dm_file *df = mem_calloc(1, sizeof(*df));
    if (df == NULL)
        return NULL;
    const char *slash = strrchr(path_or_name, '/');
    df->name = mem_strdup(slash != NULL ? slash + 1 : path_or_name);
    if (df->name == NULL) {
        mem_free(df);
        return NULL;
    }
    df->role = role;
    return df;
}

/* Reads the first 4 bytes of path: 1 when they are "GGUF". */
static int sniff_gguf(const char *path, genai_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno(err, errno, "%s", path);
    char magic[4];
    ssize_t r;
    do {
        r = pread(fd, magic, sizeof(magic), 0);
    } while (r < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (r < 0)
        return err_errno(err, saved, "%s", path);
    return r == 4 && memcmp(magic, "GGUF", 4) == 0;
}

int dm_file_open(const char *path, enum dm_role role, dm_file **out, genai_error *err)
{
    if (path == NULL || (unsigned)role >= DM_ROLE__COUNT)
        return err_set(err, GENAI_EBAD_ARG, "dm_file_open: no path or bad role");
    int is_gguf = sniff_gguf(path, err);
    if (is_gguf < 0)
        return is_gguf;
    dm_file *df = new_file(path, role);
    if (df == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    int rc;
    if (is_gguf) {
        gguf_file *g;
        if ((rc = gguf_open(path, &g, err)) < 0)
            goto fail;
        df->format = DM_FORMAT_GGUF;
        rc = fill_from_gguf(df, g, err);
        gguf_close(g);
    } else {
        dm_st_file *st;
        if ((rc = dm_st_open(path, &st, err)) < 0)
            goto fail;
        df->format = DM_FORMAT_SAFETENSORS;
        rc = fill_from_st(df, st, err);
        dm_st_close(st);
    }
    if (rc < 0) {
        err_prefix(err, "%s", path);
        goto fail;
    }
    *out = df;
    return 0;
fail:
    dm_file_free(df);
    return rc;
}

int dm_file_parse_buffer(const void *data, size_t len, const char *name, enum dm_role role,
                         dm_file **out, genai_error *err)
{
    if (data == NULL || name == NULL || (unsigned)role >= DM_ROLE__COUNT)
        return err_set(err, GENAI_EBAD_ARG, "dm_file_parse_buffer: bad argument");
    dm_file *df = new_file(name, role);
    if (df == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    int rc;
    if (len >= 4 && memcmp(data, "GGUF", 4) == 0) {
        gguf_file *g;
        if ((rc = gguf_parse_buffer(data, len, &g, err)) < 0)
            goto fail;
        df->format = DM_FORMAT_GGUF;
        rc = fill_from_gguf(df, g, err);
        gguf_close(g);
    } else {
        dm_st_file *st;
        if ((rc = dm_st_parse_buffer(data, len, &st, err)) < 0)
            goto fail;
        df->format = DM_FORMAT_SAFETENSORS;
        rc = fill_from_st(df, st, err);
        dm_st_close(st);
    }
    if (rc < 0)
        goto fail;
    *out = df;
    return 0;
fail:
    dm_file_free(df);
    return rc;
}
