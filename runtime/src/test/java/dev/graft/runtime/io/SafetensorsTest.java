package dev.graft.runtime.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
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

  /** A sparse file of {@code size} bytes whose header is {@code json}. */
  private Path sparse(String name, long size, String json) throws Exception {
    Path f = dir.resolve(name);
    byte[] h = json.getBytes(StandardCharsets.UTF_8);
    try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(f.toFile(), "rw")) {
      ByteBuffer b = ByteBuffer.allocate(8 + h.length).order(ByteOrder.LITTLE_ENDIAN);
      b.putLong(h.length).put(h);
      raf.write(b.array());
      raf.setLength(size);
    }
    return f;
  }

  private static long allocatedSoFar() {
    return ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean())
        .getCurrentThreadAllocatedBytes();
  }

  @Test
  void finding5_sparseSafetensorsWithHugeDeclaredSizeIsRejectedWithoutAllocating() throws Exception {
    long size = 2_000_000_000L;
    // A 60-byte header declaring a small tensor, then ~2 GB of (sparse) data it does not cover.
    Path small = sparse("small.safetensors", size, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
    long t0 = System.nanoTime();
    long a0 = allocatedSoFar();
    FormatException e = assertThrows(FormatException.class, () -> Safetensors.read(small));
    long allocated = allocatedSoFar() - a0;
    long ms = (System.nanoTime() - t0) / 1_000_000;
    assertTrue(e.getMessage().contains("the tensors cover 8 bytes of data, the file holds"), e.getMessage());
    assertTrue(ms < 1000, "rejected in " + ms + " ms");
    assertTrue(allocated < 10_000_000, "allocated " + allocated + " bytes before refusing");

    for (String json : List.of(
        // declared sizes that do not fit the file, or overflow when multiplied
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1000000000],\"data_offsets\":[0,4000000000]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,16]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[500000000],\"data_offsets\":[0,2000000000]}}")) {
      Path f = sparse("declared.safetensors", size - 4096, json);
      long before = allocatedSoFar();
      long start = System.nanoTime();
      GraftException g = assertThrows(GraftException.class, () -> Safetensors.read(f), json);
      long took = (System.nanoTime() - start) / 1_000_000;
      long bytes = allocatedSoFar() - before;
      assertTrue(bytes < 10_000_000, json + ": allocated " + bytes + " bytes before refusing: " + g.getMessage());
      assertTrue(took < 1000, json + ": refused in " + took + " ms");
    }
  }

  @Test
  void finding5_headerLengthIsBoundedBeforeItIsRead() throws Exception {
    Path f = dir.resolve("huge-header.safetensors");
    try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(f.toFile(), "rw")) {
      ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(Safetensors.MAX_HEADER_BYTES + 1);
      raf.write(b.array());
      raf.setLength(Safetensors.MAX_HEADER_BYTES + 100);
    }
    long before = allocatedSoFar();
    FormatException e = assertThrows(FormatException.class, () -> Safetensors.read(f));
    assertTrue(allocatedSoFar() - before < 10_000_000, "the header was not read");
    assertTrue(e.getMessage().contains("header length 104857601 is out of range"), e.getMessage());
    Path dup = sparse("dup.safetensors", 8 + 120,
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
    assertThrows(FormatException.class, () -> Safetensors.read(dup));
  }

  @Test
  void tensorsLargerThanTheHeapAreRefusedBeforeAnyIsRead() throws Exception {
    long each = 1_600_000_000L;
    int n = (int) (Runtime.getRuntime().maxMemory() / each) + 1;
    StringBuilder json = new StringBuilder("{");
    for (int i = 0; i < n; i++) {
      json.append(i == 0 ? "" : ",").append("\"t").append(i).append("\":{\"dtype\":\"I32\",\"shape\":[").append(each / 4)
          .append("],\"data_offsets\":[").append(i * each).append(",").append((i + 1) * each).append("]}");
    }
    json.append("}");
    int headerLen = json.toString().getBytes(StandardCharsets.UTF_8).length;
    Path f = sparse("large.safetensors", 8 + headerLen + n * each, json.toString());
    long start = System.nanoTime();
    GraftException e = assertThrows(GraftException.class, () -> Safetensors.read(f));
    long ms = (System.nanoTime() - start) / 1_000_000;
    assertEquals(dev.graft.runtime.RuntimeErrorCode.IO, e.getErrorCode());
    assertTrue(e.getMessage().contains("more than this JVM's heap"), e.getMessage());
    assertTrue(ms < 1000, "refused in " + ms + " ms");
  }
}
