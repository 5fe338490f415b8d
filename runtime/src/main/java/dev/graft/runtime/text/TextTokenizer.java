package dev.graft.runtime.text;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A Hugging Face tokenizer ({@code tokenizer.json}) run by DJL's native binding, which ships in
 * its jar and works offline. Texts are truncated to {@code maxLength} tokens (special tokens
 * included) and not padded: batches are padded later to their own longest sequence.
 */
public final class TextTokenizer implements AutoCloseable {
  public static final String INPUT_IDS = "input_ids";
  public static final String ATTENTION_MASK = "attention_mask";
  public static final String TOKEN_TYPE_IDS = "token_type_ids";

  private final HuggingFaceTokenizer tokenizer;
  private final int maxLength;

  private TextTokenizer(HuggingFaceTokenizer tokenizer, int maxLength) {
    this.tokenizer = tokenizer;
    this.maxLength = maxLength;
  }

  private static Map<String, String> options(int maxLength) {
    if (maxLength < 2) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "maxLength must be >= 2 (room for special tokens), got " + maxLength);
    }
    Map<String, String> o = new LinkedHashMap<>();
    o.put("maxLength", Integer.toString(maxLength));
    o.put("modelMaxLength", Integer.toString(maxLength));
    o.put("truncation", "true");
    o.put("padding", "false");
    o.put("addSpecialTokens", "true");
    return o;
  }

  /** Loads a {@code tokenizer.json} file. */
  public static TextTokenizer fromFile(Path tokenizerJson, int maxLength) {
    try {
      return new TextTokenizer(HuggingFaceTokenizer.newInstance(tokenizerJson, options(maxLength)), maxLength);
    } catch (IOException | RuntimeException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot load tokenizer " + tokenizerJson + ": " + e.getMessage(), e);
    }
  }

  /**
   * Loads a {@code tokenizer.json} classpath resource, e.g. {@code all-minilm-l6-v2-tokenizer.json}
   * (absolute name without a leading slash).
   */
  public static TextTokenizer fromClasspath(ClassLoader loader, String resource, int maxLength) {
    try (InputStream in = loader.getResourceAsStream(resource)) {
      if (in == null) {
        throw new GraftException(RuntimeErrorCode.IO, "tokenizer resource '" + resource + "' is not on the classpath");
      }
      return new TextTokenizer(HuggingFaceTokenizer.newInstance(in, options(maxLength)), maxLength);
    } catch (IOException | RuntimeException e) {
      if (e instanceof GraftException g) {
        throw g;
      }
      throw new GraftException(RuntimeErrorCode.IO, "cannot load tokenizer resource " + resource + ": " + e.getMessage(), e);
    }
  }

  /** Loads a classpath resource with this class's (or the thread's) class loader. */
  public static TextTokenizer fromClasspath(String resource, int maxLength) {
    ClassLoader l = Thread.currentThread().getContextClassLoader();
    return fromClasspath(l != null ? l : TextTokenizer.class.getClassLoader(), resource, maxLength);
  }

  public int getMaxLength() {
    return maxLength;
  }

  /** Encodes one text: {@code input_ids}, {@code attention_mask}, {@code token_type_ids}, unpadded. */
  public Map<String, long[]> encode(String text) {
    return features(tokenizer.encode(text));
  }

  /** Encodes many texts (in parallel inside the native library). */
  public List<Map<String, long[]>> encodeAll(List<String> texts) {
    Encoding[] all = tokenizer.batchEncode(texts);
    List<Map<String, long[]>> out = new ArrayList<>(all.length);
    for (Encoding e : all) {
      out.add(features(e));
    }
    return out;
  }

  /** The tokens of a text (with special tokens), for display. */
  public List<String> tokens(String text) {
    return List.of(tokenizer.encode(text).getTokens());
  }

  private static Map<String, long[]> features(Encoding e) {
    Map<String, long[]> m = new LinkedHashMap<>();
    m.put(INPUT_IDS, e.getIds());
    m.put(ATTENTION_MASK, e.getAttentionMask());
    m.put(TOKEN_TYPE_IDS, e.getTypeIds());
    return m;
  }

  @Override
  public void close() {
    tokenizer.close();
  }
}
