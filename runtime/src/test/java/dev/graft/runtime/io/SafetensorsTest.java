package dev.graft.runtime.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.FormatException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
  @TempDir Path dir;

  @Test
  void roundTripKeepsTypesShapesValuesAndMetadata() {
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    tensors.put("w", TensorData.ofFloats(new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, -6.5f}));
    tensors.put("d", TensorData.ofDoubles(new long[] {2}, new double[] {Math.PI, -1e300}));
    tensors.put("i", TensorData.ofLongs(new long[] {}, new long[] {Long.MIN_VALUE}));
    tensors.put("empty", TensorData.ofFloats(new long[] {0, 4}, new float[0]));
    Path f = dir.resolve("t.safetensors");
    Safetensors.write(f, tensors, Map.of("format", "pt"));

    Safetensors.Contents c = Safetensors.read(f);
    assertEquals(Map.of("format", "pt"), c.metadata());
    assertEquals(tensors.keySet(), c.tensors().keySet());
    assertArrayEquals(new float[] {1, 2, 3, 4, 5, -6.5f}, c.tensors().get("w").toFloats(), 0f);
    assertArrayEquals(new long[] {2, 3}, c.tensors().get("w").shape());
    assertArrayEquals(new double[] {Math.PI, -1e300}, c.tensors().get("d").toDoubles(), 0);
    assertArrayEquals(new long[] {Long.MIN_VALUE}, c.tensors().get("i").toLongs());
    assertArrayEquals(new long[0], c.tensors().get("i").shape());
    assertEquals(tensors.get("w"), c.tensors().get("w"));
  }

  @Test
  void layoutIsTheStandardOne() throws Exception {
    Path f = dir.resolve("one.safetensors");
    Safetensors.write(f, Map.of("x", TensorData.ofFloats(new long[] {1}, new float[] {1.5f})), Map.of());
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(f)).order(ByteOrder.LITTLE_ENDIAN);
    long n = b.getLong(0);
    assertEquals(0, n % 8, "header padded to 8 bytes");
    String header = new String(b.array(), 8, (int) n, StandardCharsets.UTF_8).strip();
    assertEquals("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", header);
    assertEquals(1.5f, b.getFloat(8 + (int) n), 0f);
    assertEquals(8 + n + 4, b.capacity());
  }

  private Path file(long headerLen, String header, byte[] data) throws Exception {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(headerLen).put(h).put(data);
    Path f = Files.createTempFile(dir, "bad", ".safetensors");
    Files.write(f, b.array());
    return f;
  }

  @Test
  void malformedHeadersAreClearErrors() throws Exception {
    String ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    int len = ok.length();
    // headerLen 0: the header's own length
    record Case(long headerLen, String header, byte[] data, String message) {}
    List<Case> cases =
        List.of(
            new Case(200L * 1024 * 1024, ok, new byte[4], "header length 209715200 is out of range"),
            new Case(len + 100, ok, new byte[4], "out of range"),
            new Case(-1, ok, new byte[4], "header length 18446744073709551615 is out of range"),
            new Case(0, ok.replace("F32", "Q7"), new byte[4], "dtype Q7"),
            new Case(0, ok.replace("[0,4]", "[0,8]"), new byte[8], "needs 4 bytes"),
            new Case(0, ok.replace("[0,4]", "[4,8]"), new byte[8], "start at 4, expected 0"),
            new Case(0, ok.replace("[0,4]", "[0,4]"), new byte[2], "past the data"),
            new Case(0, ok, new byte[12], "cover 4 bytes of data, the file holds 12"),
            new Case(0, ok.replace("}}", "}"), new byte[4], "not valid JSON"),
            new Case(0, ok.replace("[1]", "[-1]"), new byte[4], "negative dimension"),
            new Case(0, ok.replace("\"data_offsets\"", "\"offsets_xx\""), new byte[4], "malformed header entry"));
    for (Case c : cases) {
      Path f = file(c.headerLen() == 0 ? c.header().length() : c.headerLen(), c.header(), c.data());
      FormatException e = assertThrows(FormatException.class, () -> Safetensors.read(f), c.message());
      assertTrue(e.getMessage().contains(c.message()), "expected '" + c.message() + "' in: " + e.getMessage());
      assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
    }
    Path tiny = dir.resolve("tiny");
    Files.write(tiny, new byte[3]);
    assertTrue(assertThrows(FormatException.class, () -> Safetensors.read(tiny)).getMessage().contains("too short"));
  }
}
