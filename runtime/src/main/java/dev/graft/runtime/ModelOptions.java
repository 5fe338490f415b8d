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
 */
public record ModelOptions(
    long seed,
    @Nullable Path host,
    Device device,
    int cudaDeviceId,
    int intraOpThreads,
    boolean training,
    boolean hostChangeAllowed) {
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
    return new ModelOptions(DEFAULT_SEED, null, Device.CPU, 0, 0, true, false);
  }

  public ModelOptions withSeed(long value) {
    return new ModelOptions(value, host, device, cudaDeviceId, intraOpThreads, training, hostChangeAllowed);
  }

  public ModelOptions withHost(@Nullable Path value) {
    return new ModelOptions(seed, value, device, cudaDeviceId, intraOpThreads, training, hostChangeAllowed);
  }

  public ModelOptions withDevice(Device value) {
    return new ModelOptions(seed, host, value, cudaDeviceId, intraOpThreads, training, hostChangeAllowed);
  }

  public ModelOptions withCudaDeviceId(int value) {
    return new ModelOptions(seed, host, device, value, intraOpThreads, training, hostChangeAllowed);
  }

  public ModelOptions withIntraOpThreads(int value) {
    return new ModelOptions(seed, host, device, cudaDeviceId, value, training, hostChangeAllowed);
  }

  public ModelOptions withTraining(boolean value) {
    return new ModelOptions(seed, host, device, cudaDeviceId, intraOpThreads, value, hostChangeAllowed);
  }

  /**
   * Allows a host other than the one the graft was compiled against: at open, the host file's
   * SHA-256 is compared with the manifest's {@code host_sha256}, and a difference is an error
   * ({@code GRAFT-R011}) unless this is set. For a host changed on purpose (re-exported, weights
   * edited) whose initializers still have the names, types and shapes the graft reads.
   */
  public ModelOptions withHostChangeAllowed() {
    return new ModelOptions(seed, host, device, cudaDeviceId, intraOpThreads, training, true);
  }
}
