defmodule Tms.Case do
  @moduledoc false
  # A unique store name and an empty data directory per test, so tests run
  # with async: true. `start_store/2` starts a store under the test
  # supervisor; `restart_store/2` stops it (final flush) and starts it again.

  use ExUnit.CaseTemplate

  using do
    quote do
      import Tms.Case
    end
  end

  setup context do
    name = :"tms_#{System.unique_integer([:positive])}"
    dir = Path.join(System.tmp_dir!(), "tms_test/#{name}")
    File.rm_rf!(dir)
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    _ = context
    {:ok, store: name, dir: dir}
  end

  @doc "A loopback TCP port free just now, for a peer process to listen on."
  def free_port do
    {:ok, socket} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(socket)
    :gen_tcp.close(socket)
    port
  end

  def start_store(context, opts \\ []) do
    opts = Keyword.merge([name: context.store, data_dir: context.dir, wal_sync: :never], opts)
    {:ok, _} = start_supervised({Tms, opts}, id: context.store)
    context.store
  end

  @doc "Starts a store that is expected to fail; returns its %Tms.Error{}."
  def start_error(opts) do
    {:error, {{:shutdown, {:failed_to_start_child, Tms.Store.Owner, %Tms.Error{} = error}}, _child}} =
      start_supervised({Tms, opts})

    error
  end

  def restart_store(context, opts \\ []) do
    :ok = stop_supervised(context.store)
    start_store(context, opts)
  end

  @doc "Waits up to 4 s for `check` to answer true, polling every 20 ms."
  def eventually(check, tries \\ 200) do
    cond do
      check.() -> :ok
      tries == 0 -> ExUnit.Assertions.flunk("condition not reached in time")
      true -> Process.sleep(20) && eventually(check, tries - 1)
    end
  end

  @doc "Runs Elixir code in a separate OS process with this project's build on the code path."
  def elixir_process(code) do
    ebin = Path.join(Mix.Project.build_path(), "lib/tms/ebin")

    Port.open({:spawn_executable, System.find_executable("elixir")}, [
      :binary,
      :exit_status,
      {:line, 1024},
      args: ["-pa", ebin, "-e", code]
    ])
  end
end
