/** Golden outputs of llama2.c's run.c (../shared/models/README.md). */
export const GOLDEN: Array<[string, string]> = [
  ['Once upon a time', 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.'],
  ["Lily's mom said", 'Lily\'s mom said, "Lily, we can go to the park with her mom. We can play with the park."'],
  ['One day, a big bear', 'One day, a big bear named Ben went to the beach with his mom. They saw a big, red ball. The ball was very shiny and shiny. Ben wanted to play with the ball.'],
];
