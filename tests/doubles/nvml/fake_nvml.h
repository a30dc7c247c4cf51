/*
 * fake_nvml.h - the NVML ABI subset the fake library exports (see
 * fake_nvml.c), declared from NVIDIA's nvml.h documentation, plus the test
 * hook fake_nvml_counters().
 */
#ifndef GENAI_FAKE_NVML_H
#define GENAI_FAKE_NVML_H

#include <stdint.h>

#define FAKE_NVML_API __attribute__((visibility("default")))

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct nvmlMemory_st {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct nvmlMemory_v2_st {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
#define FAKE_NVML_MEMORY_V2 ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))

typedef struct nvmlPciInfo_st {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct nvmlProcessInfo_st {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

/* How often the probe called in; read by tests through dlsym. */
typedef struct fake_nvml_counts {
    unsigned init, shutdown, count, memory_v1, memory_v2, processes;
} fake_nvml_counts;

FAKE_NVML_API nvmlReturn_t nvmlInit_v2(void);
FAKE_NVML_API nvmlReturn_t nvmlShutdown(void);
FAKE_NVML_API const char *nvmlErrorString(nvmlReturn_t rc);
FAKE_NVML_API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length);
FAKE_NVML_API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *m);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *m);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                                   unsigned int *count,
                                                                   nvmlProcessInfo_t *infos);
FAKE_NVML_API nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device,
                                                                    unsigned int *count,
                                                                    nvmlProcessInfo_t *infos);
FAKE_NVML_API const fake_nvml_counts *fake_nvml_counters(void);

#endif
