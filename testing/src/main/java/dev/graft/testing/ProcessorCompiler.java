package dev.graft.testing;

import com.google.protobuf.TextFormat;
import com.google.testing.compile.Compilation;
import com.google.testing.compile.Compiler;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.spec.manifest.Manifest;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.function.Supplier;
import javax.annotation.processing.Processor;
import javax.tools.JavaFileObject;
import javax.tools.StandardLocation;
import org.jspecify.annotations.Nullable;

/**
 * javac through compile-testing with an annotation processor (a fresh one per compilation) and
 * the host files of one folder ({@code -Agraft.hostDir}), or of the class path alone; reads what
 * the processor wrote for declarations in package {@value #PACKAGE}.
 */
public final class ProcessorCompiler {
  /** The package of test declarations. */
  public static final String PACKAGE = "test";

  private final Supplier<? extends Processor> processor;
  private final @Nullable Supplier<Path> hostDir;

  private ProcessorCompiler(Supplier<? extends Processor> processor, @Nullable Supplier<Path> hostDir) {
    this.processor = processor;
    this.hostDir = hostDir;
  }

  /** Hosts from {@code hostDir} (asked at each compilation, so a test may add files to it first), then the class path. */
  public static ProcessorCompiler withHostDir(Supplier<? extends Processor> processor, Supplier<Path> hostDir) {
    return new ProcessorCompiler(processor, hostDir);
  }

  /** Hosts from the class path only, as in a user's build. */
  public static ProcessorCompiler onClassPath(Supplier<? extends Processor> processor) {
    return new ProcessorCompiler(processor, null);
  }

  public Compilation compile(JavaFileObject... sources) {
    Compiler javac = Compiler.javac().withProcessors(processor.get());
    return (hostDir == null ? javac : javac.withOptions("-Agraft.hostDir=" + hostDir.get())).compile(sources);
  }

  /** The source of {@code test.<simpleName>}. */
  public static JavaFileObject source(String simpleName, String... lines) {
    return JavaFileObjects.forSourceLines(PACKAGE + "." + simpleName, lines);
  }

  /** The bytes of the resource {@code test/<name>} the compilation wrote; fails the test when it wrote none. */
  public static byte[] resource(Compilation compilation, String name) {
    JavaFileObject file = compilation.generatedFile(StandardLocation.CLASS_OUTPUT, PACKAGE, name)
        .orElseThrow(() -> new AssertionError("resource " + PACKAGE + "/" + name + " not written"));
    try (InputStream in = file.openInputStream()) {
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The resource {@code test/<name>} as UTF-8 text. */
  public static String text(Compilation compilation, String name) {
    return new String(resource(compilation, name), StandardCharsets.UTF_8);
  }

  /** The manifest written for declaration {@code test.<simpleName>}. */
  public static Manifest manifest(Compilation compilation, String simpleName) {
    Manifest.Builder m = Manifest.newBuilder();
    try {
      TextFormat.merge(text(compilation, simpleName + ".manifest.textproto"), m);
    } catch (TextFormat.ParseException e) {
      throw new AssertionError("manifest of " + simpleName + " does not parse", e);
    }
    return m.build();
  }

  /** The generated class {@code test.<simpleName>Graft}. */
  public static String generatedClass(Compilation compilation, String simpleName) {
    String name = PACKAGE + "." + simpleName + "Graft";
    try {
      return compilation.generatedSourceFile(name).orElseThrow(() -> new AssertionError(name + " not generated"))
          .getCharContent(true).toString();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
