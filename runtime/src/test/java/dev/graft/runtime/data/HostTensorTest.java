package dev.graft.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Host tensors without ONNX Runtime: nested arrays flattened row-major, examples of tensors stacked into a batch. */
class HostTensorTest {
  @Test
  void aNestedArrayIsFlattenedRowMajorWithItsShape() {
    float[][][][] images = new float[2][3][4][5];
    for (int b = 0; b < 2; b++) {
      for (int c = 0; c < 3; c++) {
        for (int y = 0; y < 4; y++) {
          for (int x = 0; x < 5; x++) {
            images[b][c][y][x] = ((b * 3 + c) * 4 + y) * 5 + x;
          }
        }
      }
    }
    HostTensor t = HostTensor.of(images);
    assertEquals(HostTensor.Kind.FLOAT32, t.kind());
    assertArrayEquals(new long[] {2, 3, 4, 5}, t.shape());
    float[] flat = t.floats();
    for (int i = 0; i < flat.length; i++) {
      assertEquals(i, flat[i], "element " + i);
    }
    images[1][2][3][4] = -1;
    assertEquals(119, t.doubleAt(119), "the tensor copied the array");
    assertEquals("float32[2, 3, 4, 5]", t.describe());
    assertArrayEquals(new long[] {0, 0}, HostTensor.of(new long[0][]).shape(), "an empty batch keeps its rank");
  }

  @Test
  void examplesOfTensorsStackIntoABatchAndTokenFeaturesStillPad() {
    Example a = Example.ofTensors(Map.of("pixel_values", HostTensor.floats(new long[] {2, 2}, new float[] {1, 2, 3, 4})), 1);
    Example b = Example.ofTensors(Map.of("pixel_values", HostTensor.floats(new long[] {2, 2}, new float[] {5, 6, 7, 8})), 0);
    Batch batch = Batch.of(List.of(a, b));
    HostTensor stacked = batch.feed().get("pixel_values");
    assertArrayEquals(new long[] {2, 2, 2}, stacked.shape());
    assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6, 7, 8}, stacked.floats());
    assertArrayEquals(new long[] {1, 0}, batch.labels());
    assertEquals(2, batch.feed().batchSize());

    Example other = Example.ofTensors(Map.of("pixel_values", HostTensor.floats(new long[] {4}, new float[4])), 0);
    GraftException e = assertThrows(GraftException.class, () -> Batch.of(List.of(a, other)));
    assertEquals(RuntimeErrorCode.TENSOR_MISMATCH, e.getErrorCode());
    assertTrue(e.getMessage().contains("expected float32[2, 2] (as example 0), given float32[4] in example 1"),
        e.getMessage());

    Batch text = Batch.of(List.of(new Example(Map.of("input_ids", new long[] {5, 6, 7}), 1),
        new Example(Map.of("input_ids", new long[] {8}), 0)));
    assertArrayEquals(new long[][] {{5, 6, 7}, {8, 0, 0}}, text.inputs().get("input_ids"));
    assertEquals(HostTensor.Kind.INT64, text.feed().get("input_ids").kind());

    GraftException both = assertThrows(GraftException.class, () -> new Example(Map.of("x", new long[] {1}), 0, null,
        Map.of("x", HostTensor.longs(new long[] {1}, new long[] {1}))));
    assertEquals(RuntimeErrorCode.ARGUMENT, both.getErrorCode());
  }
}
