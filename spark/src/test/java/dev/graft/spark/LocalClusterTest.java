package dev.graft.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;

class LocalClusterTest {
  @Test
  void tasksRunInSeparateExecutorJvms() {
    JavaSparkContext context = JavaSparkContext.fromSparkContext(LocalCluster.session().sparkContext());
    String driver = ManagementFactory.getRuntimeMXBean().getName();
    List<String> jvms =
        context
            .parallelize(List.of(1, 2, 3, 4, 5, 6, 7, 8), 8)
            .map(i -> ManagementFactory.getRuntimeMXBean().getName())
            .collect();
    Set<String> distinct = new TreeSet<>(jvms);
    assertEquals(LocalCluster.EXECUTORS, distinct.size(), "executor JVMs seen: " + distinct);
    assertEquals(false, distinct.contains(driver), "a task ran in the driver JVM");
  }
}
