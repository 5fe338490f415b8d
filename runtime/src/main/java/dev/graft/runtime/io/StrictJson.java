package dev.graft.runtime.io;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import dev.graft.runtime.FormatException;
import java.io.IOException;
import java.io.StringReader;
import java.math.BigDecimal;

/**
 * JSON as RFC 8259 defines it, for files that may come from anyone ({@code adapter_config.json},
 * safetensors headers): no comments, no unquoted or single-quoted strings, no {@code NaN}, one
 * value and nothing after it, and no key twice in an object (Gson's parser accepts all of these,
 * the last duplicate winning). Every violation is a {@link FormatException} naming the file.
 */
public final class StrictJson {
  private StrictJson() {}

  /** Parses {@code text}; {@code src} names the file in errors. */
  public static JsonElement parse(String src, String text) {
    try (JsonReader r = new JsonReader(new StringReader(text))) {
      r.setStrictness(Strictness.STRICT);
      JsonElement value = read(src, r);
      if (r.peek() != JsonToken.END_DOCUMENT) {
        throw new FormatException(src, "is not valid JSON: more after the value at " + r.getPath());
      }
      return value;
    } catch (IOException | IllegalStateException | NumberFormatException e) {
      throw new FormatException(src, "is not valid JSON: " + e.getMessage(), e);
    }
  }

  /** Parses {@code text}, which must be an object. */
  public static JsonObject parseObject(String src, String text) {
    JsonElement e = parse(src, text);
    if (!e.isJsonObject()) {
      throw new FormatException(src, "is not a JSON object");
    }
    return e.getAsJsonObject();
  }

  private static JsonElement read(String src, JsonReader r) throws IOException {
    switch (r.peek()) {
      case BEGIN_OBJECT -> {
        JsonObject o = new JsonObject();
        r.beginObject();
        while (r.hasNext()) {
          String path = r.getPath();
          String key = r.nextName();
          if (o.has(key)) {
            throw new FormatException(src, "is not valid JSON: key '" + key + "' appears twice (at " + path + ")");
          }
          o.add(key, read(src, r));
        }
        r.endObject();
        return o;
      }
      case BEGIN_ARRAY -> {
        JsonArray a = new JsonArray();
        r.beginArray();
        while (r.hasNext()) {
          a.add(read(src, r));
        }
        r.endArray();
        return a;
      }
      case STRING -> {
        return new JsonPrimitive(r.nextString());
      }
      case NUMBER -> {
        return new JsonPrimitive(new BigDecimal(r.nextString()));
      }
      case BOOLEAN -> {
        return new JsonPrimitive(r.nextBoolean());
      }
      case NULL -> {
        r.nextNull();
        return JsonNull.INSTANCE;
      }
      default -> throw new FormatException(src, "is not valid JSON: unexpected " + r.peek() + " at " + r.getPath());
    }
  }
}
