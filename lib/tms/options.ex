defmodule Tms.Options do
  @moduledoc false
  # The one schema of store options: it validates them, fills in defaults,
  # and renders the option list of `Tms`'s moduledoc. Every default lives
  # here and nowhere else (the engine receives every field explicitly).

  @units [:second, :millisecond, :microsecond, :nanosecond]
  @per_second %{second: 1, millisecond: 1_000, microsecond: 1_000_000, nanosecond: 1_000_000_000}
  # 9999-12-31T23:59:59Z, capped so that partition arithmetic cannot overflow.
  @last_second 253_402_300_799
  @max_timestamp 4_611_686_018_427_387_903

  # {key, group, default, type, doc}. A nil default means "computed", and
  # the doc says from what.
  @schema [
    {:name, :store, :required, :atom, "the store's name; every call takes it."},
    {:data_dir, :store, :required, :dir,
     "the directory; created if missing. One store per directory: a second one gets a `:locked` error."},
    {:time_unit, :store, :millisecond, {:in, @units},
     "unit of every timestamp. Timestamps must lie within ±9999-12-31 in that unit."},
    {:wal_sync, :store, {:interval, 100}, :sync, "when the WAL is fsynced; see Durability."},
    {:partition_duration, :store, nil, {:nil_or, :pos_int},
     "width of a time partition in `:time_unit` (`nil`: one day). Segments never span partitions."},
    {:flush_threshold, :store, 8192, :pos_int,
     "points per series buffer that queue it for flushing (large chunks compress best)."},
    {:max_buffered_points, :store, 20_000_000, :pos_int,
     "memory ceiling: past it writes get `:overloaded` until a flush (about 16 bytes a point)."},
    {:max_series, :store, 10_000_000, :pos_int,
     "cardinality ceiling: a write that would create a series past it gets `:cardinality_limit` (existing series keep working). A series costs about 1 KB of memory (measured by `bench/cardinality.exs`), so the default allows about 10 GB."},
    {:compression_level, :store, 8, {:range, 0, 12}, "pco compression level."},
    {:cache_bytes, :store, 128 * 1024 * 1024, :non_neg_int,
     "size of the caches of decoded chunks and (an eighth of it) decoded timestamp columns, in bytes."},
    {:rollups, :store, [], :rollups,
     "rollup tiers, finest first, each `[resolution: r, retention: d]` in `:time_unit` (`retention:` left out or `nil`: kept forever), e.g. `[[resolution: 300_000, retention: 90 * 86_400_000], [resolution: 3_600_000]]`. Each resolution a multiple of the one before and a divisor of `:partition_duration`, retentions growing. See Rollup tiers."},
    {:wal_segment_bytes, :store, 64 * 1024 * 1024, {:min, 4096}, "WAL file size before rotation, in bytes."},
    {:shards, :ingest, nil, {:nil_or, :pos_int},
     "number of shard processes (`nil`: `System.schedulers_online()`)."},
    {:batch_size, :ingest, 2_000, :pos_int, "points a shard gathers before writing them."},
    {:batch_ms, :ingest, 5, :pos_int, "longest a shard holds asynchronous points, in milliseconds."},
    {:max_in_flight, :ingest, 10_000, :pos_int,
     "asynchronous points queued per shard before `write_async/5` answers `:overloaded` (a queued point costs about 0.5 KB of shard memory)."},
    {:flush_interval, :timers, 1_000, :pos_int,
     "how often buffers that reached `:flush_threshold` are flushed, in milliseconds."},
    {:cold_after, :timers, 300_000, :non_neg_int,
     "a buffer idle this long (milliseconds) is flushed, and a time partition with no new segment for this long is compacted into one segment with one chunk per series."},
    {:cold_flush_interval, :timers, 300_000, :pos_int,
     "how often the cold flush and compaction run, in milliseconds."},
    {:retention, :timers, nil, {:nil_or, :pos_int},
     "keep this much history (in `:time_unit`); older points are deleted every `:retention_interval`. `nil`: keep everything."},
    {:retention_interval, :timers, 3_600_000, :pos_int, "how often retention runs, in milliseconds."},
    {:scrape, :server, [], :scrape,
     "scrape jobs (see `Tms.Scraper`) the store pulls into itself, started in its supervision tree."},
    {:http, :server, false, :http,
     "`false`, or a keyword list that starts an HTTP server with the Prometheus API (`Tms.HTTP`) in the store's supervision tree: `port:` (required; `0` picks a free one, see `Tms.HTTP.port/1`), `ip:` (default `{127, 0, 0, 1}`), `token:` (a bearer token every request must carry), `max_body_bytes:` (default 64 MiB; larger bodies get 413), `max_clients:` (default 1,000; more open connections get 503), `request_timeout:` (milliseconds a request's head may take to arrive, default 10,000; its body must then come at 1 KB/s or more)."}
  ]

  @doc """
  Returns `%{name:, data_dir:, time_unit:, engine: map, ingest: map, timers: map}`
  or raises `ArgumentError` naming the bad option.
  """
  def validate!(opts) when is_list(opts) do
    defaults = for {key, _, default, _, _} <- @schema, default != :required, do: {key, default}
    opts = Keyword.validate!(opts, [:name, :data_dir | defaults])
    values = Map.new(@schema, fn {key, _, default, type, _} -> {key, check!(opts, key, default, type)} end)
    unit = values.time_unit
    per_second = Map.fetch!(@per_second, unit)
    max_abs_timestamp = min(@last_second * per_second, @max_timestamp)

    engine =
      values
      |> Map.take(keys(:store) -- [:name, :data_dir, :time_unit])
      |> Map.merge(%{
        rollups: Enum.map(values.rollups, &%{resolution: &1[:resolution], retention: &1[:retention]}),
        partition_duration: values.partition_duration || 86_400 * per_second,
        max_abs_timestamp: max_abs_timestamp,
        units_per_second: per_second
      })

    ingest =
      values
      |> Map.take(keys(:ingest))
      |> Map.merge(%{
        shards: values.shards || System.schedulers_online(),
        max_abs_timestamp: max_abs_timestamp
      })

    %{
      name: values.name,
      data_dir: Path.expand(values.data_dir),
      time_unit: unit,
      engine: engine,
      ingest: ingest,
      timers: Map.take(values, keys(:timers)),
      http: http(values.http),
      scrape: Tms.Scraper.jobs!(values.scrape)
    }
  end

  def validate!(opts) do
    raise ArgumentError, "Tms options must be a keyword list, got: #{inspect(opts)}"
  end

  @doc """
  The option list of one group (`:store`, `:ingest`, `:timers`) as Markdown
  bullets, defaults included, for `Tms`'s moduledoc.
  """
  def docs(group) do
    for {key, ^group, default, _type, doc} <- @schema, into: "" do
      "  * `#{inspect(key)}` - #{doc}#{default_doc(key, default)}\n"
    end
  end

  defp keys(group), do: for({key, ^group, _, _, _} <- @schema, do: key)

  defp default_doc(_key, :required), do: " Required."
  defp default_doc(_key, nil), do: ""

  defp default_doc(key, default) when is_integer(default) and default >= 10_000 do
    if String.ends_with?(Atom.to_string(key), "_bytes"),
      do: " Default `#{grouped(default)}` (#{div(default, 1_048_576)} MiB).",
      else: " Default `#{grouped(default)}`."
  end

  defp default_doc(_key, default), do: " Default `#{inspect(default)}`."

  defp grouped(n), do: n |> Integer.to_string() |> String.replace(~r/\B(?=(\d{3})+$)/, "_")

  defp check!(opts, key, default, type) do
    case Keyword.fetch(opts, key) do
      {:ok, value} ->
        if valid?(type, value),
          do: value,
          else:
            raise(
              ArgumentError,
              "Tms option #{inspect(key)} must be #{expected(type)}, got: #{inspect(value)}"
            )

      :error when default == :required ->
        raise ArgumentError, "Tms option #{inspect(key)} is required"
    end
  end

  defp valid?(:atom, value), do: is_atom(value) and value not in [nil, true, false]
  defp valid?(:dir, value), do: is_binary(value) and value != "" and String.valid?(value)
  defp valid?(:pos_int, value), do: is_integer(value) and value > 0
  defp valid?(:non_neg_int, value), do: is_integer(value) and value >= 0
  defp valid?({:min, min}, value), do: is_integer(value) and value >= min
  defp valid?({:range, min, max}, value), do: is_integer(value) and value >= min and value <= max
  defp valid?({:in, values}, value), do: value in values
  defp valid?({:nil_or, type}, value), do: is_nil(value) or valid?(type, value)

  defp valid?(:scrape, jobs), do: is_list(jobs)

  defp valid?(:rollups, tiers) do
    is_list(tiers) and
      Enum.all?(tiers, fn tier ->
        Keyword.keyword?(tier) and valid?(:pos_int, tier[:resolution]) and
          valid?({:nil_or, :pos_int}, tier[:retention]) and
          Keyword.keys(tier) -- [:resolution, :retention] == []
      end)
  end

  defp valid?(:http, false), do: true

  defp valid?(:http, opts) do
    Keyword.keyword?(opts) and Keyword.has_key?(opts, :port) and
      Enum.all?(opts, fn
        {:port, p} -> is_integer(p) and p in 0..65_535
        {:ip, ip} -> is_tuple(ip) and is_list(:inet.ntoa(ip))
        {:token, t} -> is_nil(t) or (is_binary(t) and t != "")
        {:max_body_bytes, n} -> is_integer(n) and n > 0
        {:max_clients, n} -> is_integer(n) and n > 0
        {:request_timeout, n} -> is_integer(n) and n > 0
        _ -> false
      end)
  end

  defp valid?(:sync, value),
    do: value in [:always, :never] or match?({:interval, ms} when is_integer(ms) and ms > 0, value)

  defp expected(:atom), do: "an atom other than nil, true and false"
  defp expected(:dir), do: "a non-empty path string"
  defp expected(:pos_int), do: "a positive integer"
  defp expected(:non_neg_int), do: "a non-negative integer"
  defp expected({:min, min}), do: "an integer >= #{min}"
  defp expected({:range, min, max}), do: "an integer from #{min} to #{max}"
  defp expected({:in, values}), do: "one of #{inspect(values)}"
  defp expected({:nil_or, type}), do: "nil or #{expected(type)}"
  defp expected(:sync), do: ":always, :never or {:interval, ms} with ms > 0"

  defp expected(:scrape), do: "a list of Tms.Scraper jobs"
  defp expected(:rollups), do: "a list of [resolution: pos_integer, retention: pos_integer | nil]"

  defp expected(:http),
    do:
      "false or a keyword list with port: 0..65535 and optionally ip:, token:, max_body_bytes:, max_clients:"

  defp http(false), do: nil

  defp http(opts) do
    Map.merge(
      %{
        ip: {127, 0, 0, 1},
        token: nil,
        max_body_bytes: 64 * 1024 * 1024,
        max_clients: 1_000,
        request_timeout: 10_000
      },
      Map.new(opts)
    )
  end
end
