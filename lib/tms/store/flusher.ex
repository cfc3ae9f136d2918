defmodule Tms.Store.Flusher do
  @moduledoc false
  # The store's housekeeping timers. Each job runs as a dirty-scheduler
  # NIF, and its timer is armed again only after the run returns, so a slow
  # run is never stacked with a second one.
  #
  #   :pending   every flush_interval       flush buffers that reached flush_threshold
  #                                          (everything, past half the memory ceiling);
  #                                          log problems the engine noted (damaged chunks)
  #   :cold      every cold_flush_interval  flush buffers idle for cold_after, then
  #                                          compact partitions closed for cold_after
  #   :retention every retention_interval   delete_before(now - retention), when set

  use GenServer
  require Logger

  def start_link(config) do
    GenServer.start_link(__MODULE__, config, name: Module.concat(config.name, Flusher))
  end

  ## Callbacks

  @impl true
  def init(config) do
    timers = config.timers
    state = %{store: config.name, engine: Tms.Store.Owner.handle(config.name).engine, config: config}
    arm(:pending, timers.flush_interval)
    arm(:cold, timers.cold_flush_interval)
    if timers.retention, do: arm(:retention, timers.retention_interval)
    {:ok, state}
  end

  @impl true
  def handle_info(:pending, state) do
    run(state, "flush", fn -> Tms.engine(:flush, [state.engine, :pending]) end)
    Tms.Store.Owner.log_warnings(state.store, state.engine)
    arm(:pending, state.config.timers.flush_interval)
    {:noreply, state}
  end

  def handle_info(:cold, state) do
    cold_after = state.config.timers.cold_after
    run(state, "cold flush", fn -> Tms.engine(:flush, [state.engine, {:idle, cold_after}]) end)
    run(state, "compaction", fn -> Tms.engine(:compact, [state.engine, cold_after]) end)
    arm(:cold, state.config.timers.cold_flush_interval)
    {:noreply, state}
  end

  def handle_info(:retention, state) do
    cutoff = System.os_time(state.config.time_unit) - state.config.timers.retention
    run(state, "retention", fn -> Tms.delete_before(state.store, cutoff) end)
    arm(:retention, state.config.timers.retention_interval)
    {:noreply, state}
  end

  defp arm(job, after_ms), do: Process.send_after(self(), job, after_ms)

  # Housekeeping failures are logged, never raised: a crash would restart
  # the flusher into the same failure. The engine keeps failed flushes'
  # points buffered and retries them on the next tick.
  defp run(state, what, fun) do
    case fun.() do
      {:ok, %{unremoved: [_ | _] = files}} ->
        Logger.error("Tms store #{inspect(state.store)}: #{what} could not remove #{inspect(files)}")

      {:ok, _report} ->
        :ok

      {:error, error} ->
        Logger.error("Tms store #{inspect(state.store)}: #{what} failed: #{error.message}")
    end
  end
end
