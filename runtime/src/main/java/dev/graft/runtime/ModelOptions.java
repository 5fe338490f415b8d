package dev.graft.runtime;

import dev.graft.runtime.session.Device;
import java.nio.file.Path;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * How to open an {@link AdapterModel}. Immutable; {@code with…} methods return a changed copy.
 *
 * @param seed seed of parameter initialization (and of dropout, where the graph has it)
 * @param host the host ONNX file; {@code null} to use the manifest's {@code host} (classpath resource or file)
 * @param device execution provider
 * @param cudaDeviceId CUDA device ordinal when {@code device} is CUDA
 * @param intraOpThreads ONNX Runtime intra-op threads; 0 for ONNX Runtime's default
 * @param training whether to open the training session (false: inference only)
 * @param hostChangeAllowed whether a host whose SHA-256 differs from the manifest's {@code
 *     host_sha256} may be used (false: such a host is refused with {@code GRAFT-R011}); see
 *     {@link #withHostChangeAllowed()}
 * @param profileDirectory where ONNX Runtime writes a profile (its JSON trace of every kernel run)
 *     per session, {@code <graph name>_<timestamp>.json}, when the model is closed; {@code null}
 *     (the default) for no profiling, which costs nothing
 * @param optimizedModelDirectory where ONNX Runtime writes each session's graph as it runs it
 *     (after its graph optimizations), {@code <graph name>.optimized.onnx}, at open; {@code null}
 *     (the default) for none
 * @param fusedKernels whether CPU sessions register Graft's native kernels for its fused backward
 *     ops where they are available ({@link dev.graft.runtime.session.FusedKernels}; default true);
 *     false runs the ops' standard-op bodies, the same values to float32 rounding, slower
 */
public record ModelOptions(
    long seed,
    @Nullable Path host,
    Device device,
    int cudaDeviceId,
    int intraOpThreads,
    boolean training,
    boolean hostChangeAllowed,
    @Nullable Path profileDirectory,
    @Nullable Path optimizedModelDirectory,
    boolean fusedKernels) {
  /** The default seed of parameter initialization. */
  public static final long DEFAULT_SEED = 42L;

  public ModelOptions {
    Objects.requireNonNull(device, "device");
    if (cudaDeviceId < 0 || intraOpThreads < 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "cudaDeviceId and intraOpThreads must be >= 0");
    }
  }

  /** CPU, seed 42, host from the manifest (refused if it is not the one compiled against), training session on. */
  public static ModelOptions defaults() {
    return new ModelOptions(DEFAULT_SEED, null, Device.CPU, 0, 0, true, false, null, null, true);
  }

  public ModelOptions withSeed(long value) {
    return new ModelOptions(value, host, device, cudaDeviceId, intraOpThreads, training, hostChangeAllowed,
        profileDirectory, optimizedModelDirectory, fusedKernels);
  }

  public ModelOptions withHost(@Nullable Path value) {
    return new ModelOptions(seed, value, device, cudaDeviceId, intraOpThreads, training, hostChangeAllowed,
        profileDirectory, optimizedModelDirectory, fusedKernels);
  }

  public ModelOptions withDevice(Device value) {
    return new ModelOptions(seed, host, value, cudaDeviceId, intraOpThreads, training, hostChangeAllowed,
        profileDirectory, optimizedModelDirectory, fusedKernels);
  }

  public ModelOptions withCudaDeviceId(int value) {
    return new ModelOptions(seed, host, device, value, intraOpThreads, training, hostChangeAllowed,
        profileDirectory, optimizedModelDirectory, fusedKernels);
  }

  public ModelOptions withIntraOpThreads(int value) {
    return new ModelOptions(seed, host, device, cudaDeviceId, value, training, hostChangeAllowed,
        profileDirectory, optimizedModelDirectory, fusedKernels);
  }

  public ModelOptions withTraining(boolean value) {
    return new ModelOptions(seed, host, device, cudaDeviceId, intraOpThreads, value, hostChangeAllowed,
        profileDirectory, optimizedModelDirectory, fusedKernels);
  }

  /**
   * Allows a host other than the one the graft was compiled against: at open, the host file's
   * SHA-256 is compared with the manifest's {@code host_sha256}, and a difference is an error
   * ({@code GRAFT-R011}) unless this is set. For a host changed on purpose (re-exported, weights
   * edited) whose initializers still have the names, types and shapes the graft reads. What the
   * compiler derived from the compiled host's values stays as compiled: e.g. PiSSA's and CorDA's
   * initial factors, SoKA's folded residual, and {@code int8Backward = INTEGER} leaving out the
   * zero-point term of an int8 layer whose zero points were all 0.
   */
  public ModelOptions withHostChangeAllowed() {
    return new ModelOptions(seed, host, device, cudaDeviceId, intraOpThreads, training, true, profileDirectory,
        optimizedModelDirectory, fusedKernels);
  }

  /**
   * Profiles every session of the model with ONNX Runtime's profiler; each session's trace is
   * written into {@code directory} (which must exist) as {@code <graph name>_<timestamp>.json}
   * when the model is closed. For finding where time goes; profiling slows every run a little.
   */
  public ModelOptions withProfiling(@Nullable Path directory) {
    return new ModelOptions(seed, host, device, cudaDeviceId, intraOpThreads, training, hostChangeAllowed, directory,
        optimizedModelDirectory, fusedKernels);
  }

  /**
   * Writes each session's graph as ONNX Runtime runs it, after its graph optimizations (fusions,
   * constant folding, layout changes), into {@code directory} (which must exist) as {@code
   * <graph name>.optimized.onnx}, when the model is opened.
   */
  public ModelOptions withOptimizedModelDump(@Nullable Path directory) {
    return new ModelOptions(seed, host, device, cudaDeviceId, intraOpThreads, training, hostChangeAllowed,
        profileDirectory, directory, fusedKernels);
  }

  /**
   * Whether CPU sessions run Graft's fused training-graph ops on its native kernels where they are
   * available (the default), or on the ops' standard-op bodies ({@code false}: for comparing the
   * two, or to rule the native library out).
   */
  public ModelOptions withFusedKernels(boolean value) {
    return new ModelOptions(seed, host, device, cudaDeviceId, intraOpThreads, training, hostChangeAllowed,
        profileDirectory, optimizedModelDirectory, value);
  }
}
