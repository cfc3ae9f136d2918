defmodule Tms do
  @moduledoc """
  An embedded time-series database: metrics stored in-process, in a
  directory, with nothing to operate.

  A store runs in your supervision tree:

      children = [
        {Tms, name: :metrics, data_dir: "/var/lib/my_app/metrics"}
      ]

      Supervisor.start_link(children, strategy: :one_for_one)

  ## Data model

  A *series* is a metric name plus labels (string keys and values; atom keys
  are accepted and stored as strings). Labels follow Prometheus' rules: a
  label with an empty value is the same as no label (it is dropped on every
  write path, so `%{"a" => "x", "b" => ""}` and `%{"a" => "x"}` are one
  series), and `__name__` is reserved for the metric name. A *point* is an integer timestamp in
  the store's `:time_unit` and a float value. Integers are accepted as
  values. NaN, +Inf, -Inf and -0.0 are valid values and round-trip
  bit-exact; since BEAM floats cannot be NaN or infinite, they are the atoms
  `:nan`, `:infinity` and `:neg_infinity` in writes and in query results.
  Writing the same series and timestamp twice keeps the later value, before
  and after flushes and restarts. Out-of-order points are accepted.

  ## Write path

  `write_batch/2` takes `{metric, labels, value}` and
  `{metric, labels, value, timestamp}` entries (no timestamp means now).
  `resolve/3` returns a series' id, which `write_batch_raw/2` takes in
  24-byte entries `<<id::little-64, ts::little-signed-64, value::little-float-64>>`,
  the fastest path. A batch is all or nothing: one bad entry rejects it with
  `{:error, %Tms.Error{}}` before anything is written.

  Each accepted batch is appended to a write-ahead log (WAL) and to
  in-memory buffers. Buffers are flushed to compressed segment files by
  `flush/1` and when the store stops.

  ## Scheduling

  Every call into the engine runs on a dirty scheduler (writes, which may
  wait on the disk, on dirty I/O; queries on dirty CPU), so no call holds
  one of the VM's normal schedulers, however large the batch or busy the disk.
  `import/4` is parsing first and runs on dirty CPU, unless the store fsyncs
  every write (`wal_sync: :always`), where it waits on the disk like any
  other write and runs on dirty I/O.

  ## Durability

  A write returns once it is in the WAL. What that means depends on `:wal_sync`:

    * `{:interval, ms}` (default, 100 ms) - the write is in the OS page cache;
      killing the BEAM (even `kill -9`) loses nothing, a power loss or kernel
      crash loses at most the last `ms`. This is the trade VictoriaMetrics and
      Prometheus make, at a fraction of the cost of an fsync per write.
    * `:always` - the write is fsynced before it returns; concurrent writers
      share one fsync (group commit).
    * `:never` - for scratch data; still survives a killed BEAM.

  On start the store replays the WAL. A torn last record (the process died
  mid-write, so it was never acknowledged) is dropped; a damaged record
  elsewhere is skipped and counted in `info/1`. A segment file that fails
  its checksum is moved to `quarantine/` and counted; the rest of the store
  opens normally.

  ## Rollup tiers

  With `rollups: [[resolution: 300_000, retention: 90 * 86_400_000],
  [resolution: 3_600_000]]` (and `retention:` for raw points), the store
  keeps, per series and per interval of each resolution, what the raw points
  in it add up to: count, sum, mean-centred sum of squares, min, max, first
  and last points, and the values before counter resets. Intervals are
  `[k * resolution, (k + 1) * resolution)`. Tiers are built by compaction
  once a time partition has ended and gone quiet (`:cold_after`), and built
  again after a late write into it; each tier's files past its retention go
  at the same time.

  `query_range/6` with a `:step` that is a multiple of a tier's resolution
  reads the coarsest such tier for partitions it covers, and raw points for
  the rest (the current partition, a partition changed since its tier was
  built): the same answer as from raw points, bit for bit where sums of
  values are exact (integers), and to rounding otherwise (intervals add up
  in another order than points). Where raw points are gone (before the
  retention cutoff), tiers answer alone; a query there that no tier can
  answer exactly (a step no resolution divides, an end inside an interval)
  gets an `:invalid_argument` error rather than a partial answer.
  PromQL's `rate`, `increase`, `delta` and `avg`, `sum`, `count`, `min`,
  `max`, `last`, `present`, `absent`, `stddev` and `stdvar` `_over_time`
  read a tier the same way when its resolution divides the range, the step
  and the evaluation times; where raw points are gone, a function or window
  a tier cannot answer (`irate`, `quantile_over_time`, a window ending
  inside an interval) is an `:execution` error.
  `info/1` reports each tier's files, series, intervals and bytes under
  `:rollups`.

  A damaged tier block is reported once, answered from raw points where
  they remain (or fails the query with `on_damage: :error`) and rebuilt by
  the next compaction.

  Limits: a query at a step only a fine tier divides sees nothing past that
  tier's retention, even where a coarser tier holds the time; an interval
  that straddles the raw retention cutoff after a late write answers from
  the tier file built before the write.

  ## Options

  #{Tms.Options.docs(:store)}
  Ingestion shards (for `write/5` and `write_async/5`):

  #{Tms.Options.docs(:ingest)}
  Housekeeping timers (wall-clock milliseconds, whatever the `:time_unit`):

  #{Tms.Options.docs(:timers)}
  HTTP and scraping:

  #{Tms.Options.docs(:server)}
  Stopping a store (`stop/1`, its supervisor or the application stopping)
  writes what the shards hold, flushes every buffer and closes the files, so
  the next start replays nothing.

  ## Configuration from the application environment

      # config/config.exs
      config :my_app, :metrics_store, name: :metrics, retention: 30 * 86_400_000

      # config/runtime.exs
      config :my_app, :metrics_store, data_dir: System.get_env("METRICS_DIR", "/var/lib/my_app/metrics")

      # application.ex
      children = [{Tms, Application.fetch_env!(:my_app, :metrics_store)}]

  ## Limits

  Metric and label names: any UTF-8 of 1 to 256 bytes (as Prometheus 3
  accepts). Label values: up to 4096 bytes (an empty value is no label). At most 64 labels per series and 4,194,304 points per call (and
  never more than `:max_buffered_points`). At most `:max_series` series.

  ## Errors

  Every function returns `{:error, %Tms.Error{}}` on failure; see
  `Tms.Error` for the kinds. Bang variants raise it.
  """

  import Bitwise, only: [>>>: 2]

  alias Tms.Error
  alias Tms.Native
  alias Tms.Store.Owner

  @typedoc "The `:name` a store was started with."
  # The range of a 64-bit timestamp: all time.
  @min_time -0x8000000000000000
  @max_time 0x7FFFFFFFFFFFFFFF

  @type store :: atom()
  @type metric :: String.t()
  @type labels :: %{optional(String.t() | atom()) => String.t()} | [{String.t() | atom(), String.t()}]
  @type value :: number() | :nan | :infinity | :neg_infinity
  @type timestamp :: integer()
  @type entry :: {metric(), labels(), value()} | {metric(), labels(), value(), timestamp()}
  @type series_id :: non_neg_integer()
  @type series_result :: %{
          metric: metric(),
          labels: %{String.t() => String.t()},
          points: [{timestamp(), value()}]
        }

  @call_timeout 30_000

  @doc """
  A child spec for a store; see the moduledoc for the options.
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    config = Tms.Options.validate!(opts)

    %{
      id: {__MODULE__, config.name},
      start: {Tms.Store, :start_link, [config]},
      type: :supervisor
    }
  end

  @doc """
  Starts a store outside a supervision tree (tests, scripts).

  Raises `ArgumentError` for bad options; returns `{:error, %Tms.Error{}}`
  when the directory cannot be opened.
  """
  @spec start_link(keyword()) :: {:ok, pid()} | {:error, Error.t() | term()}
  def start_link(opts) do
    case Tms.Store.start_link(Tms.Options.validate!(opts)) do
      {:error, {:shutdown, {:failed_to_start_child, _, %Error{} = error}}} -> {:error, error}
      other -> other
    end
  end

  @doc """
  Stops a store: flushes every buffered point and closes its files.
  A store that is not running answers `{:error, %Tms.Error{kind: :no_store}}`.
  """
  @spec stop(store(), timeout()) :: :ok | {:error, Error.t()}
  def stop(store, timeout \\ :infinity) do
    Supervisor.stop(store, :normal, timeout)
  catch
    :exit, :noproc -> no_store(store)
    :exit, {:noproc, _} -> no_store(store)
  end

  @doc """
  Writes one point and returns once it is in the engine (in the WAL, per
  `:wal_sync`). `timestamp` defaults to now.

  Single points go through the store's ingestion shards, which batch
  concurrent writers into one raw write, so this is the call for many
  processes each writing now and then. For bulk data use `write_batch/2`.

  ## Examples

      iex> Tms.write(:doc_store, "temperature", %{"room" => "kitchen"}, 21.5, 1_700_000_000_000)
      :ok
  """
  @spec write(store(), metric(), labels(), value(), timestamp() | nil) :: :ok | {:error, Error.t()}
  def write(store, metric, labels, value, timestamp \\ nil) do
    with {:ok, handle, shard, ts} <- route(store, metric, labels, timestamp) do
      GenServer.call(elem(handle.shards, shard), {:write, metric, labels, value, ts}, @call_timeout)
    end
  catch
    :exit, reason ->
      {:error, Error.new(:closed, "the store's ingest shard is not running: #{inspect(reason)}")}
  end

  @doc """
  Writes one point without waiting for it: returns `:ok` once the point is
  queued at its shard. At most `:max_in_flight` points per shard may be
  queued; past that the call returns `{:error, %Tms.Error{kind: :overloaded}}`
  at once (the caller decides whether to retry, drop or slow down).

  A queued point that the engine then rejects (an invalid label, a full
  disk) is logged and counted in `info/1` as `:async_write_errors`.
  """
  @spec write_async(store(), metric(), labels(), value(), timestamp() | nil) :: :ok | {:error, Error.t()}
  def write_async(store, metric, labels, value, timestamp \\ nil) do
    with {:ok, handle, shard, ts} <- route(store, metric, labels, timestamp) do
      slot = shard + 1

      if :atomics.add_get(handle.counters, slot, 1) > handle.max_in_flight do
        :atomics.sub(handle.counters, slot, 1)

        {:error,
         Error.new(
           :overloaded,
           "#{handle.max_in_flight} asynchronous points are already queued at this shard"
         )}
      else
        GenServer.cast(elem(handle.shards, shard), {:write, metric, labels, value, ts})
      end
    end
  end

  # The shard of a series: a hash of its key reduced by multiply-shift, so
  # one series always goes to one shard and no process is shared by all.
  defp route(store, metric, labels, timestamp) do
    with {:ok, handle} <- fetch(store) do
      shard = (:erlang.phash2({metric, labels}, 0x1_0000_0000) * tuple_size(handle.shards)) >>> 32
      {:ok, handle, shard, timestamp || System.os_time(handle.time_unit)}
    end
  end

  @doc """
  Writes labeled points, creating series as needed. All or nothing.

  ## Examples

      iex> Tms.write_batch(:doc_store, [
      ...>   {"cpu_usage", %{"host" => "web-1", "core" => "0"}, 0.42},
      ...>   {"cpu_usage", [host: "web-1", core: "1"], :nan, 1_700_000_000_000}
      ...> ])
      :ok
      iex> {:error, %Tms.Error{kind: :invalid_argument}} =
      ...>   Tms.write_batch(:doc_store, [{"cpu_usage", %{"host" => 1}, 0.5}])
  """
  @spec write_batch(store(), [entry()]) :: :ok | {:error, Error.t()}
  def write_batch(store, entries) when is_list(entries) do
    with {:ok, handle} <- fetch(store) do
      with {:ok, _points} <- engine(:write_batch, [handle.engine, entries, System.os_time(handle.time_unit)]),
           do: :ok
    end
  end

  def write_batch(_store, entries), do: invalid("entries must be a list, got: #{inspect(entries)}")

  @doc """
  Like `write_batch/2`, raising `Tms.Error` on failure.
  """
  @spec write_batch!(store(), [entry()]) :: :ok
  def write_batch!(store, entries), do: bang(write_batch(store, entries))

  @doc """
  Writes a binary of 24-byte entries
  `<<series_id::little-64, timestamp::little-signed-64, value::little-float-64>>`,
  with ids from `resolve/3`. Values are IEEE bits, so NaN and infinities are
  written as they are. All or nothing: a size that is not a multiple of 24,
  an unknown id or a timestamp out of range rejects the whole binary.

  ## Examples

      iex> {:ok, id} = Tms.resolve(:doc_store, "disk_free", %{"mount" => "/"})
      iex> Tms.write_batch_raw(:doc_store, <<id::little-64, 1_700_000_000_000::little-signed-64, 0.5::little-float-64>>)
      :ok
      iex> {:error, %Tms.Error{kind: :invalid_argument}} = Tms.write_batch_raw(:doc_store, <<1, 2, 3>>)
  """
  @spec write_batch_raw(store(), binary()) :: :ok | {:error, Error.t()}
  def write_batch_raw(store, binary) when is_binary(binary) do
    with {:ok, handle} <- fetch(store) do
      with {:ok, _points} <- engine(:write_raw, [handle.engine, binary]), do: :ok
    end
  end

  def write_batch_raw(_store, other), do: invalid("a raw batch must be a binary, got: #{inspect(other)}")

  @doc """
  Imports a whole body in one of the formats Prometheus' and
  VictoriaMetrics' clients send, parsed in the engine in one call: no term
  per sample or label. All or nothing: a malformed body is
  `{:error, %Tms.Error{kind: :invalid_argument, details: %{line: line}}}`
  (the 1-based line, quoted in the message) and nothing of it is written.

  Formats:

    * `:prometheus_text` - the text exposition format 0.0.4 that exporters
      serve on `/metrics`: `# HELP`/`# TYPE` and other comments skipped,
      `\\`, `\"` and `\n` escapes in label values, an optional trailing
      comma, spaces or tabs between tokens, `NaN`, `+Inf`, `-Inf`, optional
      integer millisecond timestamps; histogram and summary lines are the
      plain series they are. The later of two samples of one series and
      timestamp wins.
    * `:remote_write` - a Prometheus remote_write 1.0 body: a protobuf
      `WriteRequest` compressed with snappy's block format, as Prometheus
      POSTs it. Exemplars, native histograms and metadata are skipped and
      counted (`:ignored`); staleness markers are kept bit-exact. The body's
      declared size is checked against `:max_decompressed_bytes` before
      anything is decompressed.
    * `:json_lines` - VictoriaMetrics' `/api/v1/import` format, one series
      a line: `{"metric":{"__name__":"m","k":"v"},"values":[...],"timestamps":[...]}`
      (values are numbers or `"NaN"`, `"+Inf"`, `"-Inf"`).

  Labels follow the store's rules: an empty value is no label; in
  `:remote_write` and `:json_lines` the `__name__` label is the metric.
  For the binary format the error's `details.line` is the position of the
  offending series.

  ## Options

    * `:labels` - a map or keyword list added to every series, replacing a
      label of the same name (a scraper's `job` and `instance`).
    * `:timestamp` - the timestamp, in the store's `:time_unit`, of samples
      that carry none. Default: now.
    * `:max_decompressed_bytes` - the largest `:remote_write` body after
      decompression. Default 64 MiB.
    * `:rename_clashing` - `true` keeps a body label that clashes with one
      of `:labels` as `exported_<name>` (Prometheus' scrape rule,
      `honor_labels: false`); `false` (default) drops it.

  Returns `{:ok, %{samples: n, series_created: k, ignored: i}}`.

  ## Examples

      iex> Tms.import(:doc_store, :prometheus_text, \"""
      ...> # TYPE http_requests_total counter
      ...> http_requests_total{method="get",code="200"} 1027 1700000000000
      ...> http_requests_total{method="post",code="400"} 3 1700000000000
      ...> \""", labels: %{"job" => "web"})
      {:ok, %{samples: 2, series_created: 2, ignored: 0}}
  """
  @spec import(store(), :prometheus_text | :remote_write | :json_lines, binary(), keyword()) ::
          {:ok, %{samples: non_neg_integer(), series_created: non_neg_integer(), ignored: non_neg_integer()}}
          | {:error, Error.t()}
  def import(store, format, body, opts \\ [])

  def import(store, format, body, opts) when is_binary(body) and is_list(opts) do
    defaults = [labels: [], timestamp: nil, max_decompressed_bytes: 64 * 1024 * 1024, rename_clashing: false]

    with {:ok, opts} <- validate_opts(opts, defaults, "import options"),
         {:ok, labels} <- import_labels(opts[:labels]),
         {:ok, handle} <- fetch(store),
         true <-
           is_nil(opts[:timestamp]) or is_integer(opts[:timestamp]) || invalid("timestamp must be an integer"),
         max = opts[:max_decompressed_bytes],
         true <-
           (is_integer(max) and max > 0) || invalid("max_decompressed_bytes must be a positive integer"),
         true <- is_boolean(opts[:rename_clashing]) || invalid("rename_clashing must be a boolean") do
      engine_opts = %{
        labels: labels,
        default_ts: opts[:timestamp] || System.os_time(handle.time_unit),
        max_decompressed: max,
        rename_clashing: opts[:rename_clashing]
      }

      engine(handle.import, [handle.engine, format, body, engine_opts])
    end
  end

  def import(_store, _format, body, _opts), do: invalid("body must be a binary, got: #{inspect(body)}")

  defp import_labels(labels) when is_map(labels) or is_list(labels) do
    Enum.reduce_while(labels, {:ok, []}, fn
      {k, v}, {:ok, acc} when (is_binary(k) or is_atom(k)) and is_binary(v) ->
        {:cont, {:ok, [{to_string(k), v} | acc]}}

      other, _ ->
        {:halt, invalid("labels must be string or atom names with string values, got: #{inspect(other)}")}
    end)
  end

  defp import_labels(other), do: invalid("labels must be a map or a keyword list, got: #{inspect(other)}")

  @doc """
  Returns the id of a series, creating it if new. Ids are dense integers
  from 0, stable for the life of the data directory.
  """
  @spec resolve(store(), metric(), labels()) :: {:ok, series_id()} | {:error, Error.t()}
  def resolve(store, metric, labels) do
    with {:ok, handle} <- fetch(store) do
      engine(:resolve, [handle.engine, metric, labels])
    end
  end

  @doc """
  Queries the series of `metric` selected by `matchers` over `from..to`
  (timestamps, both inclusive).

  ## Matchers

  A map or keyword list of label equalities (`%{"host" => "a"}`), or a list
  whose items are `{label, value}` or `{label, op, value}` with `op` one of
  `:eq`, `:neq`, `:regex`, `:not_regex`. Regexes use RE2 syntax and are
  anchored (they must match the whole value), as in Prometheus; a bad regex
  is an `:invalid_argument` error. As in Prometheus, a series without a
  label has the value `""` for it: `{"env", :eq, ""}` selects series without
  `env`, and a regex that matches `""` selects them too.

  ## Options

    * `:step` - bucket width in the store's `:time_unit`; with `:agg`.
    * `:agg` - `:avg`, `:min`, `:max`, `:sum`, `:count`, `:first`, `:last`,
      `:rate` or `:increase`; with `:step`.
    * `:group_by` - a list of label names: aggregate across all selected
      series sharing those labels' values, one result per group, whose
      `:labels` hold only those labels. `[]` makes one group of everything.
      Needs `:step` and `:agg`.
    * `:format` - `:list` (default): points are `[{ts, value}]`; `:binary`:
      points are one binary of `<<ts::little-signed-64, value::little-float-64>>`
      per point (IEEE bits, so NaN payloads come through), built without a
      term per point.
    * `:on_damage` - what a query does when a chunk it needs is unreadable
      (its payload fails its checksum, or its file vanished): `:skip`
      (default) answers from everything readable and leaves that chunk's
      points out; `:error` fails the query with `:corrupt_data` (or `:io`).
      Either way the damage is counted in `info/1` (`:damaged_chunks`) and
      logged as a warning once per chunk. Compaction carries every readable
      chunk over and moves a damaged file to `quarantine/`, counting the
      loss (`:chunks_lost`, `:points_lost`).

  ## Results

  `{:ok, [%{metric: metric, labels: labels, points: points}]}` sorted by
  labels; points sorted by timestamp. Series (or groups) with no point in
  range are left out.

  Without `:step`, points are the raw points. With `:step`, a point at `ts`
  falls in the bucket starting at `floor(ts / step) * step`; each bucket
  starting within `from..to` that holds a point gives one point
  `{bucket_start, value}` (a partial bucket starting before `from` is left
  out, empty buckets too). With `:group_by`, a bucket aggregates every point
  of every series of the group: `:avg` is the mean of all those points,
  `:count` counts them, `:first`/`:last` take the earliest/latest point
  (between series with the same timestamp, the first/last series in label
  order), and `:rate`/`:increase` add up the series' own increases.

  Special values: a Prometheus staleness marker (the NaN with bits
  `0x7ff0000000000002`, which says a series ended) is no sample: raw queries
  return it, aggregations skip it. Any other NaN makes `:avg` and `:sum` NaN (as in Prometheus);
  `:min` and `:max` skip NaN points and are NaN only when every point of the
  bucket is NaN; `:count` counts NaN points.

  Counters: `:increase` is, per bucket, its last value minus the last value
  before it (the first point of the range has none, and its bucket starts
  from its own first value), plus the value before each drop (a counter
  reset, `value < previous`), as Prometheus' `increase` counts. A NaN in the
  middle of a bucket is no drop; a NaN at either end makes it NaN. `:rate`
  is the increase
  divided by the step in seconds.

  ## Examples

      iex> :ok = Tms.write_batch(:doc_store, [{"load", %{"host" => "a"}, 1.5, 1_000}, {"load", %{"host" => "a"}, :infinity, 2_000}])
      iex> {:ok, [%{labels: %{"host" => "a"}, points: points}]} = Tms.query_range(:doc_store, "load", %{"host" => "a"}, 0, 5_000)
      iex> points
      [{1_000, 1.5}, {2_000, :infinity}]
      iex> {:ok, [%{points: [{0, 1.5}, {2_000, :infinity}]}]} =
      ...>   Tms.query_range(:doc_store, "load", [{"host", :regex, "a|b"}], 0, 5_000, step: 2_000, agg: :max)
  """
  @spec query_range(store(), metric(), labels() | list(), timestamp(), timestamp(), keyword()) ::
          {:ok, [%{metric: metric(), labels: map(), points: [{timestamp(), value()}] | binary()}]}
          | {:error, Error.t()}
  def query_range(store, metric, matchers, from, to, opts \\ [])

  def query_range(store, metric, matchers, from, to, opts) when is_integer(from) and is_integer(to) do
    with {:ok, opts} <- query_opts(opts),
         {:ok, handle} <- fetch(store) do
      engine(:query_range, [handle.engine, metric, matchers, from, to, opts])
    end
  rescue
    # from/to outside 64 bits do not decode in the NIF.
    ArgumentError -> invalid("from and to must be 64-bit integers")
  end

  def query_range(_store, _metric, _matchers, from, to, _opts) do
    invalid("from and to must be integers, got: #{inspect(from)}, #{inspect(to)}")
  end

  # Only the shape is checked here (a keyword list of known options); the
  # engine checks each value's type (the NIF) and how they combine (the
  # query), once each, and says what is wrong.
  defp query_opts(opts) do
    with true <-
           Keyword.keyword?(opts) || invalid("query options must be a keyword list, got: #{inspect(opts)}") do
      with {:ok, opts} <-
             validate_opts(
               opts,
               [step: nil, agg: nil, group_by: nil, format: :list, on_damage: :skip],
               "query options"
             ),
           do: {:ok, Map.new(opts)}
    end
  end

  @doc """
  Like `query_range/6`, raising `Tms.Error` on failure.
  """
  @spec query_range!(store(), metric(), labels(), timestamp(), timestamp(), keyword()) :: [series_result()]
  def query_range!(store, metric, matchers, from, to, opts \\ []) do
    bang(query_range(store, metric, matchers, from, to, opts))
  end

  @doc """
  Evaluates a PromQL query (Prometheus 2.42's language) at `time`, in the
  store's `:time_unit`. See `Tms.PromQL` for the answer's shape and the
  options (`:lookback_delta`, `:timeout`, `:max_samples`).

  ## Examples

      iex> :ok = Tms.write_batch(:doc_store, [{"requests", %{"code" => "200"}, 10, 1_000}, {"requests", %{"code" => "500"}, 2, 1_000}])
      iex> {:ok, %{type: :vector, result: [%{labels: labels, value: {2_000, 12.0}}]}} = Tms.promql(:doc_store, "sum(requests)", 2_000)
      iex> labels
      %{}
  """
  @spec promql(store(), String.t(), timestamp(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def promql(store, query, time, opts \\ []), do: Tms.PromQL.query(store, query, time, opts)

  @doc """
  Evaluates a PromQL query at `from`, `from + step`, ... up to `to` (the
  store's `:time_unit`), as Prometheus' `/api/v1/query_range` does: a
  `:matrix` answer (or an error). See `Tms.PromQL`.
  """
  @spec promql_range(store(), String.t(), timestamp(), timestamp(), pos_integer(), keyword()) ::
          {:ok, map()} | {:error, Error.t()}
  def promql_range(store, query, from, to, step, opts \\ []),
    do: Tms.PromQL.query_range(store, query, from, to, step, opts)

  @doc """
  Returns the label sets of the series of `metric` selected by `matchers`
  (see `query_range/6`), sorted.

  Options `from:` and `to:` (timestamps in the store's unit, inclusive; by
  default all time) keep only series with data in that range: a point not
  yet flushed, or a flushed chunk whose time span overlaps it.
  """
  @spec series(store(), metric(), labels(), keyword()) ::
          {:ok, [%{String.t() => String.t()}]} | {:error, Error.t()}
  def series(store, metric, matchers \\ %{}, opts \\ []) do
    with {:ok, opts} <- validate_opts(opts, [from: @min_time, to: @max_time], "series options"),
         true <-
           (opts[:from] in @min_time..@max_time and opts[:to] in @min_time..@max_time) ||
             invalid("from and to must be 64-bit integer timestamps"),
         {:ok, handle} <- fetch(store) do
      engine(:series, [handle.engine, metric, matchers, opts[:from], opts[:to]])
    end
  end

  @doc """
  Returns the distinct values of `label` among the series of `metric`, sorted.
  """
  @spec label_values(store(), metric(), String.t() | atom()) :: {:ok, [String.t()]} | {:error, Error.t()}
  def label_values(store, metric, label) do
    with {:ok, handle} <- fetch(store) do
      engine(:label_values, [handle.engine, metric, label])
    end
  end

  @doc """
  Returns every metric name of the store, sorted.
  """
  @spec metrics(store()) :: {:ok, [metric()]} | {:error, Error.t()}
  def metrics(store) do
    with {:ok, handle} <- fetch(store) do
      engine(:metrics, [handle.engine])
    end
  end

  @doc """
  Writes every buffered point to segment files and empties the WAL.
  On failure (a full disk, say) the points stay buffered and in the WAL, and
  the next flush writes them.
  """
  @spec flush(store()) :: :ok | {:error, Error.t()}
  def flush(store) do
    with {:ok, handle} <- fetch(store),
         {:ok, _report} <- engine(:flush, [handle.engine, :all]) do
      :ok
    end
  end

  @doc """
  Flushes every buffered point, then merges the segments of every time
  partition (the current one included) into one segment per partition with
  one chunk per series, as VictoriaMetrics' `force_merge` does. Points before
  the retention cutoff are dropped on the way. The store does this by itself
  for partitions idle for `:cold_after`; call it to measure the compacted
  size or before a backup.

  Returns what was merged, and every old file that could not be removed.
  """
  @spec compact(store()) ::
          {:ok,
           %{
             partitions: non_neg_integer(),
             segments_merged: non_neg_integer(),
             bytes_before: non_neg_integer(),
             bytes_after: non_neg_integer(),
             unremoved: list()
           }}
          | {:error, Error.t()}
  def compact(store) do
    with {:ok, handle} <- fetch(store),
         {:ok, _flushed} <- engine(:flush, [handle.engine, :all]) do
      engine(:compact, [handle.engine, 0])
    end
  end

  @doc """
  Deletes every point with a timestamp before `cutoff`.

  Segments holding nothing newer are removed from disk; points left in
  segments that straddle the cutoff are hidden from every query from now on
  (the cutoff is recorded durably) and dropped at the next compaction. The
  cutoff never moves back, and from then on a write of a point before it is
  refused with `:invalid_argument` (it could never be read). With the
  `:retention` option the store calls this itself every `:retention_interval`.

  The cutoff must be a valid timestamp in the store's `:time_unit`. A
  cutoff after both the newest point and the current time would delete
  everything and refuse every ordinary write from then on (a nanosecond
  timestamp given to a millisecond store does exactly that), so it is
  refused unless `force: true` is given.

  Returns what was removed, and every file that could not be removed with
  the reason (those are out of the store but still on disk).

  ## Options

    * `:force` - accept a cutoff in the future of both the data and the
      clock. Default `false`.
  """
  @spec delete_before(store(), timestamp(), keyword()) ::
          {:ok, %{segments_removed: non_neg_integer(), bytes_removed: non_neg_integer(), unremoved: list()}}
          | {:error, Error.t()}
  def delete_before(store, cutoff, opts \\ [])

  def delete_before(store, cutoff, opts) when is_integer(cutoff) and is_list(opts) do
    with {:ok, [force: force]} <- validate_opts(opts, [force: false], "delete_before options"),
         true <- is_boolean(force) || invalid("force must be a boolean, got: #{inspect(force)}"),
         {:ok, handle} <- fetch(store),
         {:ok, report} <- engine(:delete_before, [handle.engine, cutoff, force]) do
      :atomics.put(handle.cutoff, 1, report.cutoff)
      {:ok, report}
    end
  rescue
    ArgumentError -> invalid("cutoff must be a 64-bit integer")
  end

  def delete_before(_store, cutoff, _opts), do: invalid("cutoff must be an integer, got: #{inspect(cutoff)}")

  defp validate_opts(opts, defaults, what) do
    case Keyword.validate(opts, defaults) do
      {:ok, opts} -> {:ok, opts}
      {:error, unknown} -> invalid("unknown #{what}: #{inspect(unknown)}")
    end
  end

  @doc """
  Counters and sizes of a store, as `{:ok, map}`. Counts and bytes are integers:

    * `:series`, `:buffered_points`, `:segments`, `:chunks`
    * `:segment_bytes`, `:wal_bytes` - bytes on disk
    * `:cache_hits`, `:cache_misses`, `:cache_bytes` - decoded-chunk cache
    * `:flushes`, `:last_flush_unix_ms` (0 before the first flush)
    * `:damaged_chunks`, `:corrupt_chunk_reads` - unreadable chunks found
      since open, and failed reads; `:chunks_lost`, `:points_lost` - what
      compaction could not carry over
    * `:series`, `:max_series` - series held, and the ceiling
    * `:missing_segments` - segment files the manifest listed that were gone
      at the last open (their points are lost; logged as a warning)
    * `:quarantined_files`, `:wal_corrupt_records`, `:wal_torn_bytes`,
      `:wal_replayed_points`, `:open_read_bytes` - what the last open found
    * `:problems` - what was quarantined or skipped, in words
    * `:shards`, `:shard_memory_bytes` - ingestion shards and the memory their
      processes hold; `:async_in_flight`, `:async_write_errors`
    * `:data_dir`, `:time_unit`
  """
  @spec info(store()) :: {:ok, map()} | {:error, Error.t()}
  def info(store) do
    with {:ok, handle} <- fetch(store),
         {:ok, info} <- engine(:info, [handle.engine]) do
      shards = Tuple.to_list(handle.shards)
      counters = handle.counters

      shard_memory =
        for name <- shards,
            pid = Process.whereis(name),
            {:memory, bytes} <- [Process.info(pid, :memory)],
            reduce: 0,
            do: (acc -> acc + bytes)

      {:ok,
       Map.merge(info, %{
         data_dir: handle.data_dir,
         time_unit: handle.time_unit,
         shards: length(shards),
         shard_memory_bytes: shard_memory,
         async_in_flight: Enum.sum(for i <- 1..length(shards), do: :atomics.get(counters, i)),
         async_write_errors: :atomics.get(counters, length(shards) + 1)
       })}
    end
  end

  @doc """
  Like `info/1`, raising `Tms.Error` on failure.
  """
  @spec info!(store()) :: map()
  def info!(store), do: bang(info(store))

  @doc false
  # The one way into the engine, for `Tms` and the store's own processes
  # (owner, shards, flusher): calls a NIF of `Tms.Native` and turns its
  # result into `{:ok, value}` or `{:error, %Tms.Error{}}`.
  @spec engine(atom(), list()) :: {:ok, term()} | {:error, Error.t()}
  def engine(fun, args), do: Native |> apply(fun, args) |> Error.from_engine()

  defp fetch(store) do
    case Owner.handle(store) do
      nil -> no_store(store)
      handle -> {:ok, handle}
    end
  end

  defp no_store(store), do: {:error, Error.new(:no_store, "no Tms store named #{inspect(store)} is running")}

  defp invalid(message), do: {:error, Error.new(:invalid_argument, message)}

  defp bang({:error, %Error{} = error}), do: raise(error)
  defp bang({:ok, value}), do: value
  defp bang(:ok), do: :ok
end
