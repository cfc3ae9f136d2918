defmodule Tms.Store.Shard do
  @moduledoc false
  # An ingestion shard: turns single-point writes from many processes into
  # raw batches, with no ETS and no NIF call per point.
  #
  # Each series is routed to one shard (by a hash of its key), so a shard's
  # process-local map {metric, labels} -> series id holds a disjoint part of
  # the series, and a series' writes keep their order. Points are packed as
  # 24-byte raw entries and handed to the engine in one `write_batch_raw`:
  #
  #   * when `batch_size` points are pending;
  #   * when a synchronous caller is waiting and the mailbox is empty (so a
  #     lone writer is not delayed, and concurrent writers share a batch);
  #   * otherwise (only asynchronous points pending) after `batch_ms`.
  #
  # Synchronous callers are answered with the batch's result, after their
  # point is in the engine. Asynchronous points are counted in an atomics
  # slot that `Tms.write_async/5` checks against `max_in_flight`.

  use GenServer
  require Logger

  @max_cached_series 1_000_000
  @nan <<0x7FF8_0000_0000_0000::little-64>>
  @infinity <<0x7FF0_0000_0000_0000::little-64>>
  @neg_infinity <<0xFFF0_0000_0000_0000::little-64>>
  @min_i64 -0x8000_0000_0000_0000
  @max_i64 0x7FFF_FFFF_FFFF_FFFF

  def child_spec({config, index}) do
    %{
      id: {__MODULE__, index},
      start: {__MODULE__, :start_link, [{config, index}]},
      shutdown: 30_000
    }
  end

  def start_link({config, index}) do
    # An idle shard hibernates, giving back the heap a burst of writes grew.
    GenServer.start_link(__MODULE__, {config, index}, name: name(config.name, index), hibernate_after: 1_000)
  end

  @doc false
  def name(store, index), do: Module.concat([store, Shard, Integer.to_string(index)])

  ## Callbacks

  @impl true
  def init({config, index}) do
    # Trap exits so that a store shutdown runs terminate/2 and writes what
    # is pending before the engine closes.
    Process.flag(:trap_exit, true)
    handle = Tms.Store.Owner.handle(config.name)

    {:ok,
     %{
       store: config.name,
       engine: handle.engine,
       counters: handle.counters,
       cutoff: handle.cutoff,
       slot: index + 1,
       batch_size: config.ingest.batch_size,
       batch_ms: config.ingest.batch_ms,
       max_abs_timestamp: config.ingest.max_abs_timestamp,
       ids: %{},
       buffer: <<>>,
       count: 0,
       async: 0,
       waiting: [],
       timer: nil
     }}
  end

  @impl true
  def handle_call({:write, metric, labels, value, ts}, from, state) do
    case prepare(state, metric, labels, value, ts) do
      {:ok, entry, state} ->
        state = %{add(state, entry) | waiting: [from | state.waiting]}
        {:noreply, maybe_write(state)}

      {:error, error, state} ->
        {:reply, {:error, error}, state}
    end
  end

  @impl true
  def handle_cast({:write, metric, labels, value, ts}, state) do
    case prepare(state, metric, labels, value, ts) do
      {:ok, entry, state} ->
        {:noreply, maybe_write(%{add(state, entry) | async: state.async + 1})}

      {:error, error, state} ->
        async_failed(state, 1, error)
        {:noreply, state}
    end
  end

  @impl true
  def handle_info(:batch_timeout, state) do
    state = %{state | timer: nil}
    {:noreply, if(state.count > 0, do: write(state), else: state)}
  end

  def handle_info({:EXIT, _from, reason}, state), do: {:stop, reason, state}

  @impl true
  def terminate(_reason, state) do
    {:message_queue_len, queued} = Process.info(self(), :message_queue_len)
    state = drain(state, queued)
    if state.count > 0, do: write(state)
    :ok
  end

  # Writes that reached the mailbox before the shard stopped are still
  # taken (write_async/5 answered :ok and counted them in flight), but only
  # those already there: writers keep sending while the shard stops.
  defp drain(state, 0), do: state

  defp drain(state, left) do
    receive do
      {:"$gen_cast", {:write, _, _, _, _} = write} ->
        {:noreply, state} = handle_cast(write, state)
        drain(state, left - 1)

      {:"$gen_call", from, {:write, _, _, _, _} = write} ->
        case handle_call(write, from, state) do
          {:noreply, state} ->
            drain(state, left - 1)

          {:reply, reply, state} ->
            GenServer.reply(from, reply)
            drain(state, left - 1)
        end
    after
      0 -> state
    end
  end

  ## Batching

  defp add(state, entry), do: %{state | buffer: state.buffer <> entry, count: state.count + 1}

  defp maybe_write(state) do
    cond do
      state.count >= state.batch_size -> write(state)
      state.waiting != [] and mailbox_empty?() -> write(state)
      state.timer == nil -> %{state | timer: Process.send_after(self(), :batch_timeout, state.batch_ms)}
      true -> state
    end
  end

  defp mailbox_empty?, do: Process.info(self(), :message_queue_len) == {:message_queue_len, 0}

  defp write(state) do
    result = Tms.write_batch_raw(state.store, state.buffer)
    Enum.each(state.waiting, &GenServer.reply(&1, result))

    if state.async > 0 do
      case result do
        :ok -> :atomics.sub(state.counters, state.slot, state.async)
        {:error, error} -> async_failed(state, state.async, error)
      end
    end

    if state.timer, do: Process.cancel_timer(state.timer)
    %{state | buffer: <<>>, count: 0, async: 0, waiting: [], timer: nil}
  end

  # The last counter slot counts asynchronous points that were lost.
  defp async_failed(state, points, error) do
    :atomics.sub(state.counters, state.slot, points)
    :atomics.add(state.counters, :atomics.info(state.counters).size, points)

    Logger.warning(
      "Tms store #{inspect(state.store)}: #{points} asynchronous points rejected: #{error.message}"
    )
  end

  ## One point

  defp prepare(state, metric, labels, value, ts) do
    with {:ok, value_bits} <- pack_value(value),
         :ok <- check_timestamp(ts, state.max_abs_timestamp),
         :ok <- check_cutoff(ts, :atomics.get(state.cutoff, 1)),
         {:ok, id, state} <- series_id(state, metric, labels) do
      {:ok, <<id::little-64, ts::little-signed-64, value_bits::binary>>, state}
    else
      {:error, %Tms.Error{} = error} -> {:error, error, state}
    end
  rescue
    # A shard never dies on a bad point: a crash would lose the batch it
    # holds for every other writer. The caller gets the error instead.
    exception ->
      {:error, Tms.Error.new(:internal, "point rejected: " <> Exception.message(exception)), state}
  end

  defp series_id(state, metric, labels) do
    case state.ids do
      %{{^metric, ^labels} => id} ->
        {:ok, id, state}

      ids ->
        with {:ok, id} <- Tms.engine(:resolve, [state.engine, metric, labels]) do
          ids = if map_size(ids) >= @max_cached_series, do: %{}, else: ids
          {:ok, id, %{state | ids: Map.put(ids, {metric, labels}, id)}}
        end
    end
  end

  defp pack_value(value) when is_float(value), do: {:ok, <<value::little-float-64>>}
  defp pack_value(:nan), do: {:ok, @nan}
  defp pack_value(:infinity), do: {:ok, @infinity}
  defp pack_value(:neg_infinity), do: {:ok, @neg_infinity}

  defp pack_value(value) when is_integer(value) do
    {:ok, <<value::little-float-64>>}
  rescue
    ArgumentError -> invalid("integer value #{value} does not fit in a float")
  end

  defp pack_value(value) do
    invalid("value must be a number, :nan, :infinity or :neg_infinity, got: #{inspect(value)}")
  end

  defp check_timestamp(ts, max) when is_integer(ts) and ts >= @min_i64 and ts <= @max_i64 do
    if abs(ts) <= max, do: :ok, else: invalid("timestamp #{ts} is outside ±#{max}")
  end

  defp check_timestamp(ts, _max), do: invalid("timestamp must be a 64-bit integer, got: #{inspect(ts)}")

  defp check_cutoff(ts, cutoff) when ts >= cutoff, do: :ok
  defp check_cutoff(ts, cutoff), do: invalid("timestamp #{ts} is before the retention cutoff #{cutoff}")

  defp invalid(message), do: {:error, Tms.Error.new(:invalid_argument, message)}
end
