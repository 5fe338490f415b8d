package dev.graft.tools.quantize;

import static dev.graft.tools.cli.Arguments.value;

import dev.graft.compiler.HostModel;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Int8Quantizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Writes the int8 twin of a float host, its linear layers int8 as ONNX Runtime's dynamic
 * quantization writes them ({@link Int8Quantizer}), for training with {@code int8Backward =
 * INTEGER}:
 *
 * <pre>
 * QuantizeCommand --host HOST.onnx --out TWIN.onnx
 * </pre>
 *
 * Prints how many layers it quantized and each one it left float, with why. The output is written
 * to a temporary file beside it and moved into place, so a failed run leaves no partial file and an
 * existing one is replaced only by a complete twin. Exit status 0 when written, 1 when the host
 * could not be read or has nothing to quantize, 2 for bad arguments.
 */
public final class QuantizeCommand {
  public static final int OK = 0;
  public static final int FAILED = 1;
  public static final int USAGE = 2;

  public static final String USAGE_TEXT = String.join("\n",
      "usage: QuantizeCommand --host HOST.onnx --out TWIN.onnx",
      "  --host HOST.onnx   the float host (one file: external data is left float)",
      "  --out TWIN.onnx    the int8 twin to write (not the host itself)");

  private QuantizeCommand() {}

  public static void main(String[] args) {
    int status = run(args, System.out, System.err);
    System.out.flush();
    if (status != OK) {
      System.exit(status);
    }
  }

  /** Runs the command on {@code args}; the exit status. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    Path host = null;
    Path target = null;
    List<String> rest = new ArrayList<>(List.of(args));
    try {
      while (!rest.isEmpty()) {
        String a = rest.remove(0);
        switch (a) {
          case "--host" -> host = Path.of(value(rest, a));
          case "--out" -> target = Path.of(value(rest, a));
          default -> throw new IllegalArgumentException("unknown argument '" + a + "'");
        }
      }
      if (host == null || target == null) {
        throw new IllegalArgumentException("expected --host HOST.onnx and --out TWIN.onnx, given "
            + (host == null ? "no --host" : "no --out"));
      }
      if (target.toAbsolutePath().normalize().equals(host.toAbsolutePath().normalize())) {
        throw new IllegalArgumentException("--out " + target + " is the host itself; write the twin to another file");
      }
    } catch (IllegalArgumentException e) {
      err.println("error: " + e.getMessage());
      err.println(USAGE_TEXT);
      return USAGE;
    }
    try {
      Path file = target.getFileName();
      Int8Quantizer.Result r = HostModel.read(host).quantizeInt8(file == null ? target.toString() : file.toString());
      Path dir = target.toAbsolutePath().getParent();
      Files.createDirectories(dir);
      // Files.write (not createTempFile, whose file is owner-only) so the twin gets the usual permissions.
      Path partial = dir.resolve("." + target.getFileName() + "." + java.util.UUID.randomUUID() + ".partial");
      try {
        Files.write(partial, r.host().model().toByteArray());
        Files.move(partial, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      } finally {
        Files.deleteIfExists(partial);
      }
      out.println("quantized " + r.quantized().size() + " linear layers of " + host + " to int8; wrote " + target);
      for (Map.Entry<String, String> e : r.skipped().entrySet()) {
        out.println("left float: " + e.getKey() + ": " + e.getValue());
      }
      return OK;
    } catch (GraftCompileException | IllegalArgumentException e) {
      err.println("error: " + e.getMessage());
      return FAILED;
    } catch (IOException e) {
      err.println("error: writing " + target + ": " + e);
      return FAILED;
    }
  }
}
