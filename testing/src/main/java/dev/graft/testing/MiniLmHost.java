package dev.graft.testing;

import dev.graft.compiler.HostModel;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/** The real all-MiniLM-L6-v2 host from its Maven jar, read once per test JVM. */
public final class MiniLmHost {
  public static final String RESOURCE = "all-minilm-l6-v2.onnx";
  private static HostModel host;

  private MiniLmHost() {}

  public static synchronized HostModel get() {
    if (host == null) {
      try (InputStream in = MiniLmHost.class.getClassLoader().getResourceAsStream(RESOURCE)) {
        if (in == null) {
          throw new IllegalStateException(RESOURCE + " is not on the test class path");
        }
        host = HostModel.read(in, RESOURCE);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return host;
  }
}
