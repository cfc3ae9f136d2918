defmodule Tms.Store.Owner do
  @moduledoc false
  # Opens the engine, publishes its handle, and closes it (a final flush)
  # when the store shuts down. The engine is opened in init/1 on purpose:
  # a store that cannot open its directory (locked, corrupt registry)
  # must fail to start rather than start and fail every call.

  use GenServer, restart: :permanent, shutdown: 60_000
  require Logger

  def start_link(config) do
    GenServer.start_link(__MODULE__, config, name: Module.concat(config.name, Owner))
  end

  @doc false
  # The published handle of a running store, or nil.
  def handle(name), do: :persistent_term.get({Tms, name}, nil)

  ## Callbacks

  @impl true
  def init(config) do
    Process.flag(:trap_exit, true)
    close_stale(config.name)

    case Tms.engine(:open, [config.data_dir, config.engine]) do
      {:ok, engine} ->
        shards = config.ingest.shards

        handle = %{
          engine: engine,
          time_unit: config.time_unit,
          data_dir: config.data_dir,
          # Imports run on a dirty CPU scheduler unless every write waits
          # for an fsync (see the NIF).
          import: if(config.engine.wal_sync == :always, do: :import_synced, else: :import),
          shards: List.to_tuple(for i <- 0..(shards - 1), do: Tms.Store.Shard.name(config.name, i)),
          # One in-flight count per shard for write_async/5, then one count
          # of asynchronous points lost to errors.
          counters: :atomics.new(shards + 1, signed: true),
          # The retention cutoff, for shards to refuse a late point alone
          # rather than fail the batch it would share with other callers.
          cutoff: :atomics.new(1, signed: true),
          max_in_flight: config.ingest.max_in_flight
        }

        {:ok, %{retention_cutoff: cutoff}} = Tms.engine(:info, [engine])
        :atomics.put(handle.cutoff, 1, cutoff)

        :persistent_term.put({Tms, config.name}, handle)
        log_warnings(config.name, engine)
        {:ok, %{name: config.name, engine: engine}}

      {:error, error} ->
        {:stop, error}
    end
  end

  @impl true
  def terminate(_reason, state) do
    :persistent_term.erase({Tms, state.name})

    case Tms.engine(:close, [state.engine]) do
      {:ok, _final_flush} ->
        :ok

      {:error, error} ->
        Logger.error("Tms store #{inspect(state.name)} did not close cleanly: #{error.message}")
    end
  end

  # An owner killed without terminate/2 left its engine published and
  # open (holding the directory lock); close it before reopening.
  defp close_stale(name) do
    with %{engine: engine} <- handle(name) do
      :persistent_term.erase({Tms, name})
      Tms.engine(:close, [engine])
    end
  end

  @doc false
  # Logs what the engine noted since the last call (what the open found,
  # damaged chunks, compaction losses): each problem once.
  def log_warnings(name, engine) do
    case Tms.engine(:take_warnings, [engine]) do
      {:ok, problems} ->
        Enum.each(problems, &Logger.warning("Tms store #{inspect(name)}: #{&1}"))

      {:error, error} ->
        Logger.warning("Tms store #{inspect(name)}: could not read its problems: #{error.message}")
    end
  end
end
