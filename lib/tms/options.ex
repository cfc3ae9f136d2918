defmodule Tms.Options do
  @moduledoc false
  # Validates store options and fills in defaults. The defaults live here
  # and nowhere else; `Tms`'s moduledoc documents them.

  @units [:second, :millisecond, :microsecond, :nanosecond]
  @per_second %{second: 1, millisecond: 1_000, microsecond: 1_000_000, nanosecond: 1_000_000_000}
  # 9999-12-31T23:59:59Z, capped so that partition arithmetic cannot overflow.
  @last_second 253_402_300_799
  @max_timestamp 4_611_686_018_427_387_903

  @defaults [
    time_unit: :millisecond,
    wal_sync: {:interval, 100},
    wal_segment_bytes: 64 * 1024 * 1024,
    partition_duration: nil,
    flush_threshold: 8192,
    max_buffered_points: 20_000_000,
    compression_level: 8,
    cache_bytes: 128 * 1024 * 1024,
    shards: nil,
    batch_size: 2_000,
    batch_ms: 5,
    max_in_flight: 10_000,
    flush_interval: 1_000,
    cold_after: 300_000,
    cold_flush_interval: 300_000,
    retention: nil,
    retention_interval: 3_600_000
  ]

  @doc """
  Returns `%{name:, data_dir:, time_unit:, engine: map, ingest: map, timers: map}`
  or raises `ArgumentError` naming the bad option.
  """
  def validate!(opts) when is_list(opts) do
    opts = Keyword.validate!(opts, [:name, :data_dir] ++ @defaults)
    name = check(opts, :name, &is_atom/1, "an atom", required: true)
    data_dir = check(opts, :data_dir, &valid_dir?/1, "a non-empty path string", required: true)
    unit = check(opts, :time_unit, &(&1 in @units), "one of #{inspect(@units)}")
    per_second = Map.fetch!(@per_second, unit)
    sync = check(opts, :wal_sync, &valid_sync?/1, ":always, :never or {:interval, ms} with ms > 0")

    partition =
      check(opts, :partition_duration, &(is_nil(&1) or pos_int?(&1)), "a positive integer (in time_unit)") ||
        86_400 * per_second

    engine = %{
      wal_sync: sync,
      wal_segment_bytes:
        check(opts, :wal_segment_bytes, &(pos_int?(&1) and &1 >= 4096), "an integer >= 4096"),
      partition_duration: partition,
      flush_threshold: check(opts, :flush_threshold, &pos_int?/1, "a positive integer"),
      max_buffered_points: check(opts, :max_buffered_points, &pos_int?/1, "a positive integer"),
      compression_level: check(opts, :compression_level, &(&1 in 0..12), "an integer from 0 to 12"),
      cache_bytes: check(opts, :cache_bytes, &(is_integer(&1) and &1 >= 0), "a non-negative integer"),
      max_abs_timestamp: min(@last_second * per_second, @max_timestamp),
      units_per_second: per_second
    }

    ingest = %{
      shards:
        check(opts, :shards, &(is_nil(&1) or pos_int?(&1)), "a positive integer") ||
          System.schedulers_online(),
      batch_size: check(opts, :batch_size, &pos_int?/1, "a positive integer"),
      batch_ms: check(opts, :batch_ms, &pos_int?/1, "a positive integer (milliseconds)"),
      max_in_flight: check(opts, :max_in_flight, &pos_int?/1, "a positive integer"),
      max_abs_timestamp: engine.max_abs_timestamp
    }

    timers = %{
      flush_interval: check(opts, :flush_interval, &pos_int?/1, "a positive integer (milliseconds)"),
      cold_after:
        check(opts, :cold_after, &(is_integer(&1) and &1 >= 0), "a non-negative integer (milliseconds)"),
      cold_flush_interval:
        check(opts, :cold_flush_interval, &pos_int?/1, "a positive integer (milliseconds)"),
      retention:
        check(opts, :retention, &(is_nil(&1) or pos_int?(&1)), "nil or a positive integer (in time_unit)"),
      retention_interval: check(opts, :retention_interval, &pos_int?/1, "a positive integer (milliseconds)")
    }

    %{
      name: name,
      data_dir: Path.expand(data_dir),
      time_unit: unit,
      engine: engine,
      ingest: ingest,
      timers: timers
    }
  end

  def validate!(opts) do
    raise ArgumentError, "Tms options must be a keyword list, got: #{inspect(opts)}"
  end

  defp check(opts, key, valid?, expected, required \\ []) do
    case Keyword.fetch(opts, key) do
      {:ok, value} ->
        if valid?.(value),
          do: value,
          else: raise(ArgumentError, "Tms option #{inspect(key)} must be #{expected}, got: #{inspect(value)}")

      :error ->
        if required[:required], do: raise(ArgumentError, "Tms option #{inspect(key)} is required")
    end
  end

  defp pos_int?(value), do: is_integer(value) and value > 0

  defp valid_sync?(:always), do: true
  defp valid_sync?(:never), do: true
  defp valid_sync?({:interval, ms}), do: pos_int?(ms)
  defp valid_sync?(_), do: false

  defp valid_dir?(dir), do: is_binary(dir) and dir != "" and String.valid?(dir)
end
