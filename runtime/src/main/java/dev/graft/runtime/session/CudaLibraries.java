package dev.graft.runtime.session;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The shared libraries ONNX Runtime's CUDA execution provider ({@code onnxruntime_gpu} 1.29)
 * loads, and the ones a loader error names: what {@link Sessions} says when {@code Device.CUDA}
 * is asked for, the provider is on the classpath, and it does not load.
 */
public final class CudaLibraries {
  /**
   * CUDA 12 (runtime, cuBLAS, cuBLASLt, cuFFT, cuRAND) and cuDNN 9, as the provider links them on
   * Linux; Windows names them {@code cudart64_12.dll}, {@code cudnn64_9.dll} and so on.
   */
  public static final List<String> REQUIRED = List.of("libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12",
      "libcufft.so.11", "libcurand.so.10", "libcudnn.so.9");

  private static final Pattern LIBRARY = Pattern.compile("\\b(lib[A-Za-z0-9_+\\-]+\\.so(?:\\.\\d+)*|[A-Za-z0-9_]+\\.dll)\\b");

  private CudaLibraries() {}

  /**
   * The library file names in a loader or ONNX Runtime error message (e.g. {@code libcublasLt.so.12}
   * from "libcublasLt.so.12: cannot open shared object file"), in order, each once, without the
   * provider's own library ({@code libonnxruntime_providers_cuda.so}, which is the one that failed
   * to load, not a missing one).
   */
  public static List<String> namedIn(String message) {
    Set<String> names = new LinkedHashSet<>();
    Matcher m = LIBRARY.matcher(message);
    while (m.find()) {
      String name = m.group(1);
      if (!name.startsWith("libonnxruntime") && !name.startsWith("onnxruntime")) {
        names.add(name);
      }
    }
    return new ArrayList<>(names);
  }

  /** The message of {@code GRAFT-R370} for ONNX Runtime's error text {@code ortMessage}. */
  public static String message(String ortMessage) {
    List<String> missing = namedIn(ortMessage);
    return "CUDA was asked for and the ONNX Runtime on the classpath has the CUDA execution provider, but it did not"
        + " load (" + ortMessage.strip() + "). "
        + (missing.isEmpty() ? "The loader named no library; " : "Missing: " + String.join(", ", missing) + ". ")
        + "It needs CUDA 12 and cuDNN 9 on the library path (LD_LIBRARY_PATH, or PATH on Windows): "
        + String.join(", ", REQUIRED) + ", and an NVIDIA driver for CUDA 12; or use Device.CPU";
  }
}
