defmodule Tms.Store do
  @moduledoc false
  # One supervisor per named store, registered under the store's name.
  # The engine owner starts first: everything after it may use the engine,
  # and under :rest_for_one a restarted owner restarts them too.

  use Supervisor

  def start_link(config) do
    Supervisor.start_link(__MODULE__, config, name: config.name)
  end

  @impl true
  def init(config) do
    children = [
      {Tms.Store.Owner, config}
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end
end
