package dev.graft.tools.quantize;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.HostModel;
import dev.graft.compiler.ir.OnnxImport;
import dev.graft.compiler.ir.QuantizedMatMul;
import dev.graft.testing.TinyBertHost;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link QuantizeCommand}: writes the twin, says what it did; bad arguments and a non-ONNX file lose nothing. */
class QuantizeCommandTest {
  @TempDir Path dir;

  private record Run(int status, String out, String err) {}

  private static Run run(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status = QuantizeCommand.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Run(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  @Test
  void writesTheTwinWhoseLinearLayersAreInt8Sites() throws Exception {
    Path host = dir.resolve("tiny.onnx");
    Files.write(host, TinyBertHost.host(5).model().toByteArray());
    Path twin = dir.resolve("out").resolve("tiny-int8.onnx");
    Run r = run("--host", host.toString(), "--out", twin.toString());
    assertEquals(QuantizeCommand.OK, r.status(), r.err());
    assertTrue(r.out().startsWith("quantized 12 linear layers of " + host + " to int8; wrote " + twin), r.out());
    HostModel written = HostModel.read(twin);
    assertEquals(12, QuantizedMatMul.find(OnnxImport.read(written.model())).size());
    try (var files = Files.list(twin.getParent())) {
      assertEquals(1, files.count(), "no partial file is left");
    }
  }

  @Test
  void badArgumentsAndAFileThatIsNotOnnxWriteNothing() throws Exception {
    Path twin = dir.resolve("twin.onnx");
    Run none = run("--out", twin.toString());
    assertEquals(QuantizeCommand.USAGE, none.status());
    assertTrue(none.err().startsWith("error: expected --host HOST.onnx and --out TWIN.onnx, given no --host"), none.err());

    Path host = dir.resolve("tiny.onnx");
    Files.write(host, TinyBertHost.host(5).model().toByteArray());
    Run self = run("--host", host.toString(), "--out", host.toString());
    assertEquals(QuantizeCommand.USAGE, self.status());
    assertTrue(self.err().contains("is the host itself"), self.err());

    Path text = dir.resolve("notes.onnx");
    Files.writeString(text, "not a model\n");
    Files.writeString(twin, "an earlier twin\n");
    Run bad = run("--host", text.toString(), "--out", twin.toString());
    assertEquals(QuantizeCommand.FAILED, bad.status());
    assertTrue(bad.err().contains("GRAFT002"), bad.err());
    assertEquals("an earlier twin\n", Files.readString(twin), "an existing output is kept when the run fails");
    try (var files = Files.list(dir)) {
      assertFalse(files.anyMatch(f -> f.getFileName().toString().endsWith(".partial")));
    }
  }
}
