// cuda_context.cu - what a CUDA process costs on the GPU and the host before
// it allocates anything of its own: context, cuBLAS handle, first kernel.
// Run on a machine with a GPU (see docs/evidence/cuda-context-h100.txt for the
// command); not part of the build or the suite.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <nvml.h>

static nvmlDevice_t dev;

static unsigned long long proc_used(void) {
    unsigned int n = 64;
    nvmlProcessInfo_t info[64];
    if (nvmlDeviceGetComputeRunningProcesses(dev, &n, info) != NVML_SUCCESS) return 0;
    for (unsigned i = 0; i < n; i++)
        if (info[i].pid == (unsigned)getpid()) return info[i].usedGpuMemory;
    return 0;
}
static unsigned long long dev_used(void) {
    nvmlMemory_t m;
    nvmlDeviceGetMemoryInfo(dev, &m);
    return m.used;
}
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256]; long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    fclose(f);
    return v;
}
static unsigned long long base;
static void report(const char *step) {
    usleep(300000);
    printf("%-22s process %7.1f MiB  device used +%7.1f MiB  host RSS %7.1f MiB\n", step,
           proc_used() / 1048576.0, (dev_used() - base) / 1048576.0, rss_kib() / 1024.0);
    fflush(stdout);
}
__global__ void add(float *a, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) a[i] += 1.0f; }

int main(void) {
    nvmlInit();
    nvmlDeviceGetHandleByIndex(0, &dev);
    base = dev_used();
    printf("CUDA_MODULE_LOADING=%s\n", getenv("CUDA_MODULE_LOADING") ? getenv("CUDA_MODULE_LOADING") : "(default)");
    report("before CUDA");
    cudaFree(0);
    report("context (cudaFree 0)");
    cublasHandle_t h;
    cublasCreate(&h);
    report("+ cublasCreate");
    float *a; cudaMalloc(&a, 1 << 20);
    add<<<256, 1024>>>(a, 1 << 18); cudaDeviceSynchronize();
    report("+ 1 MiB, first kernel");
    float *b; cudaMalloc(&b, 256u << 20);
    report("+ cudaMalloc 256 MiB");
    float alpha = 1, beta = 0; float *c; cudaMalloc(&c, 4u << 20);
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 512, 512, 512, &alpha, b, 512, b, 512, &beta, c, 512);
    cudaDeviceSynchronize();
    report("+ first SGEMM");
    cublasDestroy(h);
    return 0;
}
