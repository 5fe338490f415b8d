package dev.graft.runtime.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.runtime.FormatException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/** PEFT's resolution of target_modules, with its exclusions and layers, and the half-precision reads. */
class PeftConfigsTest {
  private static final Set<String> MODULES = modules();

  private static Set<String> modules() {
    Set<String> m = new TreeSet<>();
    for (int i = 0; i < 3; i++) {
      for (String s : List.of("attention.self.query", "attention.self.key", "attention.output.dense", "output.dense")) {
        m.add("encoder.layer." + i + "." + s);
      }
    }
    return m;
  }

  private static Set<String> resolve(String json) {
    return PeftConfigs.resolve("c", JsonParser.parseString(json).getAsJsonObject(), MODULES);
  }

  @Test
  void listsTakeNamesEqualToOrEndingWithTheEntryAndStringsAreFullMatchRegexes() {
    assertEquals(Set.of("encoder.layer.0.attention.self.query", "encoder.layer.1.attention.self.query",
        "encoder.layer.2.attention.self.query"), resolve("{\"target_modules\": [\"query\"]}"));
    // "dense" takes both dense layers of each block; "output.dense" too, as a dotted suffix.
    assertEquals(6, resolve("{\"target_modules\": [\"dense\"]}").size());
    assertEquals(6, resolve("{\"target_modules\": [\"output.dense\"]}").size());
    assertEquals(Set.of("encoder.layer.1.output.dense"), resolve("{\"target_modules\": [\"encoder.layer.1.output.dense\"]}"));
    assertEquals(Set.of(), resolve("{\"target_modules\": [\"uery\"]}"), "a suffix must follow a dot");
    // A regex must match the whole name: "query" alone matches nothing.
    assertEquals(Set.of(), resolve("{\"target_modules\": \"query\"}"));
    assertEquals(3, resolve("{\"target_modules\": \".*\\\\.query\"}").size());
  }

  @Test
  void exclusionsAndLayersNarrowTheModules() {
    assertEquals(Set.of("encoder.layer.0.attention.self.query", "encoder.layer.2.attention.self.query"),
        resolve("{\"target_modules\": [\"query\"], \"exclude_modules\": [\"encoder.layer.1.attention.self.query\"]}"));
    assertEquals(Set.of("encoder.layer.2.attention.self.query"),
        resolve("{\"target_modules\": [\"query\"], \"layers_to_transform\": [2]}"));
    assertEquals(Set.of("encoder.layer.1.attention.self.query"),
        resolve("{\"target_modules\": [\"query\"], \"layers_to_transform\": 1, \"layers_pattern\": \"layer\"}"));
    FormatException bad = assertThrows(FormatException.class,
        () -> resolve("{\"target_modules\": [\"query\"], \"layers_to_transform\": [1.5]}"));
    assertTrue(bad.getMessage().contains("layers_to_transform: expected layer indices, given [1.5]"), bad.getMessage());
    FormatException notNames = assertThrows(FormatException.class, () -> resolve("{\"target_modules\": 7}"));
    assertTrue(notNames.getMessage().contains("target_modules: expected a list of names, given 7"), notNames.getMessage());
  }

  @Test
  void hostileRegexesAreRefusedNotRunForever() {
    FormatException invalid = assertThrows(FormatException.class, () -> resolve("{\"target_modules\": \"(query\"}"));
    assertTrue(invalid.getMessage().contains("target_modules: (query is not a valid regular expression"), invalid.getMessage());
    FormatException costly = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> assertThrows(FormatException.class,
        () -> resolve("{\"target_modules\": \"(.*?){30}Z\"}")));
    assertTrue(costly.getMessage().contains("takes more than " + PeftConfigs.MAX_MATCH_STEPS + " steps"), costly.getMessage());
    FormatException longOne = assertThrows(FormatException.class,
        () -> resolve("{\"target_modules\": \"" + "a".repeat(PeftConfigs.MAX_PATTERN_CHARS + 1) + "\"}"));
    assertTrue(longOne.getMessage().contains("the limit is " + PeftConfigs.MAX_PATTERN_CHARS), longOne.getMessage());
  }

  @Test
  void theConfigOfAnOlderPeftWithoutNewerEntriesMatches() {
    JsonObject expected = JsonParser.parseString("{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16,"
        + " \"target_modules\": [\"query\"], \"use_dora\": false, \"use_rslora\": false, \"bias\": \"none\"}").getAsJsonObject();
    JsonObject given = JsonParser.parseString("{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16.0,"
        + " \"target_modules\": \"encoder\\\\.layer\\\\.\\\\d\\\\.attention\\\\.self\\\\.query\"}").getAsJsonObject();
    List<String> notes = new ArrayList<>();
    PeftConfigs.check("c", given, expected, MODULES, null, notes);
    assertEquals(List.of(), notes);
    given.addProperty("use_dora", true);
    FormatException dora = assertThrows(FormatException.class, () -> PeftConfigs.check("c", given, expected, MODULES, null, notes));
    assertTrue(dora.getMessage().contains("use_dora: expected false, given true"), dora.getMessage());
  }

  private static TensorData half(DType type, int... bits) {
    ByteBuffer b = ByteBuffer.allocate(bits.length * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int x : bits) {
      b.putShort((short) x);
    }
    return new TensorData(type, new long[] {bits.length}, b.array());
  }

  @Test
  void halfPrecisionTensorsWidenExactly() {
    float[] f16 = half(DType.F16, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x3555).toFloats();
    assertEquals(1f, f16[0]);
    assertEquals(-2f, f16[1]);
    assertEquals(65504f, f16[2]);
    assertEquals(0x1p-24f, f16[3], "smallest subnormal");
    assertEquals(1023 * 0x1p-24f, f16[4], "largest subnormal");
    assertEquals(0x1p-14f, f16[5], "smallest normal");
    assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(f16[6]));
    assertEquals(Float.POSITIVE_INFINITY, f16[7]);
    assertEquals(Float.NEGATIVE_INFINITY, f16[8]);
    assertEquals(0.33325195f, f16[9]);
    assertTrue(Float.isNaN(half(DType.F16, 0x7e00).toFloats()[0]));
    float[] bf16 = half(DType.BF16, 0x3f80, 0xc2f7, 0x0001, 0x7f80).toFloats();
    assertEquals(1f, bf16[0]);
    assertEquals(-123.5f, bf16[1]);
    assertEquals(Float.intBitsToFloat(0x00010000), bf16[2]);
    assertEquals(Float.POSITIVE_INFINITY, bf16[3]);
  }
}
