/* Stripe card form: Stripe.js collects the card in Stripe's iframe and confirms
 * the SetupIntent with Stripe; only the SetupIntent id is posted to the portal. */
(function () {
  "use strict";
  var form = document.getElementById("stripe-card-form");
  if (!form || !window.Stripe) { return; }
  var stripe = window.Stripe(form.getAttribute("data-publishable-key"));
  var elements = stripe.elements();
  var card = elements.create("card");
  card.mount("#card-element");
  var errorNode = document.getElementById("card-error");
  var busy = false;

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }
    busy = true;
    stripe.confirmCardSetup(form.getAttribute("data-client-secret"), { payment_method: { card: card } })
      .then(function (result) {
        if (result.error) {
          errorNode.textContent = result.error.message;
          errorNode.hidden = false;
          busy = false;
          return;
        }
        form.elements.setup_intent.value = result.setupIntent.id;
        form.submit();
      });
  });
})();
