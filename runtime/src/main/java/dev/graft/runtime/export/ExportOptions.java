package dev.graft.runtime.export;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;

/**
 * How a graft is exported as ONNX.
 *
 * @param includeHead whether the export outputs the task's output (the head's logits); without,
 *     it outputs the host's own outputs (the adapted hidden states)
 * @param requireMerged whether every adapter must be merged into the host's weights ({@code
 *     GRAFT-R050} naming those that cannot); otherwise they stay in the graph as adapters
 * @param dyLoraRank the rank nested-rank adapters (DyLoRA) are exported at; 0: their maximum
 * @param modelFile the model's file name; its weights go to {@code <modelFile>.data} beside it
 * @param progressBytes a line is logged each time this many more bytes of weights are written
 */
public record ExportOptions(boolean includeHead, boolean requireMerged, int dyLoraRank, String modelFile,
    long progressBytes) {
  public static final String DEFAULT_MODEL_FILE = "model.onnx";

  public ExportOptions {
    if (modelFile.isEmpty() || modelFile.contains("/") || modelFile.contains("\\") || modelFile.startsWith(".")) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "modelFile must be a plain file name, got '" + modelFile + "'");
    }
    if (dyLoraRank < 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "dyLoraRank must be 0 (the maximum) or a rank, got " + dyLoraRank);
    }
    if (progressBytes <= 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "progressBytes must be positive, got " + progressBytes);
    }
  }

  /** The head included, unmerged parts allowed, DyLoRA at its maximum rank, {@code model.onnx}, a line per 256 MiB. */
  public static ExportOptions defaults() {
    return new ExportOptions(true, false, 0, DEFAULT_MODEL_FILE, 256L << 20);
  }

  public ExportOptions withHead(boolean value) {
    return new ExportOptions(value, requireMerged, dyLoraRank, modelFile, progressBytes);
  }

  public ExportOptions withRequireMerged(boolean value) {
    return new ExportOptions(includeHead, value, dyLoraRank, modelFile, progressBytes);
  }

  public ExportOptions withDyLoraRank(int value) {
    return new ExportOptions(includeHead, requireMerged, value, modelFile, progressBytes);
  }

  public ExportOptions withModelFile(String value) {
    return new ExportOptions(includeHead, requireMerged, dyLoraRank, value, progressBytes);
  }

  public ExportOptions withProgressBytes(long value) {
    return new ExportOptions(includeHead, requireMerged, dyLoraRank, modelFile, value);
  }

  /** The external data file's name: {@code <modelFile>.data}. */
  public String dataFile() {
    return modelFile + ".data";
  }
}
