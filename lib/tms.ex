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
  are accepted and stored as strings). A *point* is an integer timestamp in
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

  ## Durability

  A write returns once it is in the WAL. What that means depends on `:wal_sync`:

    * `{:interval, ms}` (default, 100 ms) - the write is in the OS page cache;
      killing the BEAM (even `kill -9`) loses nothing, a power loss or kernel
      crash loses at most the last `ms`. This is the trade VictoriaMetrics and
      Prometheus make, at a fraction of the cost of an fsync per write.
    * `:always` - the write is fsynced before it returns; concurrent writers
      share one fsync (group commit). Writes then run on dirty I/O schedulers.
    * `:never` - for scratch data; still survives a killed BEAM.

  On start the store replays the WAL. A torn last record (the process died
  mid-write, so it was never acknowledged) is dropped; a damaged record
  elsewhere is skipped and counted in `info/1`. A segment file that fails
  its checksum is moved to `quarantine/` and counted; the rest of the store
  opens normally.

  ## Options

    * `:name` (required) - the store's name, an atom; every call takes it.
    * `:data_dir` (required) - the directory; created if missing. One store
      per directory: a second one gets a `:locked` error.
    * `:time_unit` - `:second`, `:millisecond` (default), `:microsecond` or
      `:nanosecond`. Timestamps must lie within ±9999-12-31 in that unit.
    * `:wal_sync` - see Durability. Default `{:interval, 100}`.
    * `:partition_duration` - width of a time partition in `:time_unit`
      (default one day). Segments never span partitions.
    * `:flush_threshold` - points per series buffer that queue it for
      flushing. Default 8192 (large chunks compress best).
    * `:max_buffered_points` - memory ceiling: past it writes get
      `:overloaded` until a flush. Default 20,000,000 (about 320 MB).
    * `:compression_level` - pco level 0..12. Default 8.
    * `:cache_bytes` - size of the decoded-chunk cache. Default 128 MiB.
    * `:wal_segment_bytes` - WAL file size before rotation. Default 64 MiB.

  ## Limits

  Metric and label names: 1 to 256 bytes of UTF-8. Label values: 1 to 4096
  bytes. At most 64 labels per series and 4,194,304 points per call.

  ## Errors

  Every function returns `{:error, %Tms.Error{}}` on failure; see
  `Tms.Error` for the kinds. Bang variants raise it.
  """

  alias Tms.Error
  alias Tms.Native
  alias Tms.Store.Owner

  @typedoc "The `:name` a store was started with."
  @type store :: atom()
  @type metric :: String.t()
  @type labels :: %{optional(String.t() | atom()) => String.t()} | [{String.t() | atom(), String.t()}]
  @type value :: number() | :nan | :infinity | :neg_infinity
  @type timestamp :: integer()
  @type entry :: {metric(), labels(), value()} | {metric(), labels(), value(), timestamp()}
  @type series_id :: non_neg_integer()
  @type series_result :: %{
          id: series_id(),
          metric: metric(),
          labels: %{String.t() => String.t()},
          points: [{timestamp(), value()}]
        }

  # Batches larger than these run on a dirty scheduler, so that no call
  # holds a normal scheduler for more than a fraction of a millisecond.
  @dirty_entries 500
  @dirty_raw_bytes 24 * 4096

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
  """
  @spec stop(store(), timeout()) :: :ok
  def stop(store, timeout \\ :infinity) do
    Supervisor.stop(store, :normal, timeout)
  end

  @doc """
  Writes one point. `timestamp` defaults to now.

  ## Examples

      iex> Tms.write(:doc_store, "temperature", %{"room" => "kitchen"}, 21.5, 1_700_000_000_000)
      :ok
  """
  @spec write(store(), metric(), labels(), value(), timestamp() | nil) :: :ok | {:error, Error.t()}
  def write(store, metric, labels, value, timestamp \\ nil)

  def write(store, metric, labels, value, nil), do: write_batch(store, [{metric, labels, value}])
  def write(store, metric, labels, value, ts), do: write_batch(store, [{metric, labels, value, ts}])

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
      now = System.os_time(handle.time_unit)

      cond do
        handle.sync_always? -> Native.write_batch_dirty_io(handle.engine, entries, now)
        longer_than?(entries, @dirty_entries) -> Native.write_batch_dirty_cpu(handle.engine, entries, now)
        true -> Native.write_batch(handle.engine, entries, now)
      end
      |> Error.wrap()
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
      cond do
        handle.sync_always? -> Native.write_raw_dirty_io(handle.engine, binary)
        byte_size(binary) > @dirty_raw_bytes -> Native.write_raw_dirty_cpu(handle.engine, binary)
        true -> Native.write_raw(handle.engine, binary)
      end
      |> Error.wrap()
    end
  end

  def write_batch_raw(_store, other), do: invalid("a raw batch must be a binary, got: #{inspect(other)}")

  @doc """
  Returns the id of a series, creating it if new. Ids are dense integers
  from 0, stable for the life of the data directory.
  """
  @spec resolve(store(), metric(), labels()) :: {:ok, series_id()} | {:error, Error.t()}
  def resolve(store, metric, labels) do
    with {:ok, handle} <- fetch(store) do
      Native.resolve(handle.engine, metric, labels) |> Error.wrap()
    end
  end

  @doc """
  Returns the points of every series of `metric` whose labels equal
  `matchers` (a map or keyword list; a matcher with value `""` matches series
  without that label), with timestamps in `from..to` (both inclusive).

  Results are sorted by labels, points by timestamp. Series with no point in
  the range are left out.

  ## Examples

      iex> :ok = Tms.write_batch(:doc_store, [{"load", %{"host" => "a"}, 1.5, 1_000}, {"load", %{"host" => "a"}, :infinity, 2_000}])
      iex> {:ok, [%{labels: %{"host" => "a"}, points: points}]} = Tms.query_range(:doc_store, "load", %{"host" => "a"}, 0, 5_000)
      iex> points
      [{1_000, 1.5}, {2_000, :infinity}]
  """
  @spec query_range(store(), metric(), labels(), timestamp(), timestamp(), keyword()) ::
          {:ok, [series_result()]} | {:error, Error.t()}
  def query_range(store, metric, matchers, from, to, opts \\ [])

  def query_range(store, metric, matchers, from, to, []) when is_integer(from) and is_integer(to) do
    with {:ok, handle} <- fetch(store) do
      Native.query_range(handle.engine, metric, matchers, from, to) |> Error.wrap()
    end
  rescue
    # from/to outside 64 bits do not decode in the NIF.
    ArgumentError -> invalid("from and to must be 64-bit integers")
  end

  def query_range(_store, _metric, _matchers, from, to, []) do
    invalid("from and to must be integers, got: #{inspect(from)}, #{inspect(to)}")
  end

  def query_range(_store, _metric, _matchers, _from, _to, opts) do
    invalid("unknown query options: #{inspect(opts)}")
  end

  @doc """
  Like `query_range/6`, raising `Tms.Error` on failure.
  """
  @spec query_range!(store(), metric(), labels(), timestamp(), timestamp(), keyword()) :: [series_result()]
  def query_range!(store, metric, matchers, from, to, opts \\ []) do
    bang(query_range(store, metric, matchers, from, to, opts))
  end

  @doc """
  Returns the label sets of the series of `metric` matching `matchers`,
  sorted.
  """
  @spec series(store(), metric(), labels()) :: {:ok, [%{String.t() => String.t()}]} | {:error, Error.t()}
  def series(store, metric, matchers \\ %{}) do
    with {:ok, handle} <- fetch(store) do
      Native.series(handle.engine, metric, matchers) |> Error.wrap()
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
         {:ok, _report} <- Native.flush(handle.engine, :all) |> Error.wrap() do
      :ok
    end
  end

  @doc """
  Counters and sizes of a store. Counts and bytes are integers:

    * `:series`, `:buffered_points`, `:segments`, `:chunks`
    * `:segment_bytes`, `:wal_bytes` - bytes on disk
    * `:cache_hits`, `:cache_misses`, `:cache_bytes` - decoded-chunk cache
    * `:flushes`, `:last_flush_unix_ms` (0 before the first flush)
    * `:quarantined_files`, `:wal_corrupt_records`, `:wal_torn_bytes`,
      `:wal_replayed_points`, `:open_read_bytes` - what the last open found
    * `:problems` - what was quarantined or skipped, in words
    * `:data_dir`, `:time_unit`
  """
  @spec info(store()) :: map() | {:error, Error.t()}
  def info(store) do
    with {:ok, handle} <- fetch(store) do
      handle.engine
      |> Native.info()
      |> Map.merge(%{data_dir: handle.data_dir, time_unit: handle.time_unit})
    end
  end

  defp fetch(store) do
    case Owner.handle(store) do
      nil -> {:error, Error.new(:no_store, "no Tms store named #{inspect(store)} is running")}
      handle -> {:ok, handle}
    end
  end

  defp invalid(message), do: {:error, Error.new(:invalid_argument, message)}

  defp bang({:error, %Error{} = error}), do: raise(error)
  defp bang({:ok, value}), do: value
  defp bang(:ok), do: :ok

  # True when the list has more than n elements; walks at most n + 1 cells.
  defp longer_than?([], _n), do: false
  defp longer_than?(_list, 0), do: true
  defp longer_than?([_ | rest], n), do: longer_than?(rest, n - 1)
  defp longer_than?(_improper, _n), do: false
end
