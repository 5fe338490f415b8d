package dev.graft.spark;

import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.spec.manifest.Manifest;
import com.google.protobuf.InvalidProtocolBufferException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.jspecify.annotations.Nullable;

/**
 * What every executor needs to open a scorer's graft, broadcast once: the graft's manifest and
 * inference graph, the adapter folder's two files (or none: the graft's initialized parameters),
 * where the host is (the manifest's class-path resource, or a path every executor can read), the
 * tokenizer of a text column, and the ONNX Runtime thread count. {@link #key()} is a digest of all
 * of it: the executor's cache opens one graft per key ({@link ExecutorGrafts}).
 *
 * <p>A plain class of strings and byte arrays (no record: Kryo cannot set a record's fields), so
 * it travels with either of Spark's serializers.
 */
final class ScoringPayload implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String key;
  private final String graftName;
  private final byte[] manifest;
  private final byte[] inferenceGraph;
  private final byte @Nullable [] adapterConfig;
  private final byte @Nullable [] adapterWeights;
  private final @Nullable String hostPath;
  private final @Nullable String tokenizer;
  private final boolean tokenizerOnClassPath;
  private final int maxTokens;
  private final int intraOpThreads;

  ScoringPayload(AdapterGraphs graphs, byte @Nullable [] adapterConfig, byte @Nullable [] adapterWeights,
      @Nullable String hostPath, @Nullable String tokenizer, boolean tokenizerOnClassPath, int maxTokens,
      int intraOpThreads) {
    this.graftName = graphs.name();
    this.manifest = graphs.manifest().toByteArray();
    this.inferenceGraph = graphs.inferenceGraph();
    this.adapterConfig = adapterConfig;
    this.adapterWeights = adapterWeights;
    this.hostPath = hostPath;
    this.tokenizer = tokenizer;
    this.tokenizerOnClassPath = tokenizerOnClassPath;
    this.maxTokens = maxTokens;
    this.intraOpThreads = intraOpThreads;
    this.key = digest();
  }

  private String digest() {
    try {
      MessageDigest d = MessageDigest.getInstance("SHA-256");
      for (byte[] part : new byte[][] {
          graftName.getBytes(StandardCharsets.UTF_8), manifest, inferenceGraph,
          adapterConfig == null ? new byte[0] : adapterConfig, adapterWeights == null ? new byte[0] : adapterWeights,
          String.valueOf(hostPath).getBytes(StandardCharsets.UTF_8),
          (tokenizer + "|" + tokenizerOnClassPath + "|" + maxTokens + "|" + intraOpThreads)
              .getBytes(StandardCharsets.UTF_8)}) {
        d.update(Long.toString(part.length).getBytes(StandardCharsets.US_ASCII));
        d.update((byte) ':');
        d.update(part);
      }
      return HexFormat.of().formatHex(d.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JDK has no SHA-256", e);
    }
  }

  String key() {
    return key;
  }

  /** The graphs, inference only, host resources resolved with the executor's class loader. */
  AdapterGraphs graphs() {
    try {
      return AdapterGraphs.of(Manifest.parseFrom(manifest), inferenceGraph, null);
    } catch (InvalidProtocolBufferException e) {
      throw new GraftException(RuntimeErrorCode.FORMAT, "the broadcast manifest of graft '" + graftName
          + "' does not parse: " + e.getMessage(), e);
    }
  }

  String graftName() {
    return graftName;
  }

  byte @Nullable [] adapterConfig() {
    return adapterConfig;
  }

  byte @Nullable [] adapterWeights() {
    return adapterWeights;
  }

  @Nullable String hostPath() {
    return hostPath;
  }

  @Nullable String tokenizer() {
    return tokenizer;
  }

  boolean tokenizerOnClassPath() {
    return tokenizerOnClassPath;
  }

  int maxTokens() {
    return maxTokens;
  }

  /** ONNX Runtime intra-op threads; 0: the executor's cores. */
  int intraOpThreads() {
    return intraOpThreads;
  }
}
